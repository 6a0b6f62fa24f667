//! Vitrina's experiments: A/B tests and bandits over recommender variants, as pure logic
//! (no I/O, no async runtime; the server stores experiments and feeds impressions and
//! outcomes in).
//!
//! - [`model`]: the spec a client posts ([`ExperimentSpec`], validated field by field into
//!   [`SpecError`]s) and the stored [`Experiment`] with its lifecycle
//!   draft → running → stopped.
//! - [`assign`](mod@assign): deterministic sticky assignment. A visitor's bucket is
//!   `xxh3_64(salt ‖ 0x00 ‖ visitor)` mapped to `[0, 1)`; the variant is picked by the
//!   cumulative traffic shares. No state is stored; the salt is random per experiment and
//!   fixed at creation, so experiments are independent of each other. A visitor keeps
//!   their variant while the allocation is unchanged (a bandit reallocation moves the
//!   visitors at the shifted boundaries).
//! - [`attribution`]: exact attribution of clicks, add-to-carts and purchases to the shown
//!   item that caused them — by recommendation id (same visitor, product in the list),
//!   else by the visitor's latest list showing the product within the attribution window;
//!   each event id at most once.
//! - [`stats`]: item-level metrics per variant, source and position. 95% Wilson score
//!   intervals for rates, a normal interval for revenue per mille; against the control a
//!   Newcombe interval of the difference, a two-sided pooled **two-proportion z-test** for
//!   the p-value (`significant` = p < 0.05), and the **probability to beat the control**
//!   from Beta(1 + successes, 1 + failures) posteriors (20,000 Monte Carlo draws, fixed
//!   seed). The normal CDF is computed here (series and continued fraction for erfc).
//! - [`bandit`]: Thompson sampling on the goal metric with an exploration floor. Every
//!   reallocation is appended to the experiment's allocation log with its reason, and
//!   [`bandit::revert`] restores the spec's shares (also logged).
//! - [`tuning`]: bounded, smoothed, revertible correction of candidate-source weights from
//!   their measured goal rate.
//! - [`simulate`]: a shop with a hidden click model and known true CTRs, used by the
//!   statistical acceptance tests in `tests/simulation.rs`; [`simulate::feature_shop`]: one
//!   whose visitors click by what the learned ranker can see (price band, category,
//!   freshness, quality), answering lists a server served (`vitrina simulate`).

pub mod assign;
pub mod attribution;
pub mod bandit;
pub mod model;
pub mod simulate;
pub mod stats;
pub mod tuning;

pub use assign::{assign, bucket};
pub use attribution::{
    attribute, Attribution, AttributionMethod, Impression, Outcome, OutcomeKind, ShownItem,
};
pub use bandit::{reallocate, thompson_allocation, thompson_allocation_normal};
pub use model::{
    random_salt, AllocationChange, Experiment, ExperimentSpec, Goal, Mode, SpecError, Status,
    TransitionError, VariantSpec,
};
pub use stats::{
    summarise, summarise_counts, Comparison, Metrics, Rate, Results, SliceResult, VariantResult,
};
pub use tuning::{adjust_weights, WeightChange};
