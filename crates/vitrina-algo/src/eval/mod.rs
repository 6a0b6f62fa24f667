//! Offline evaluation: dataset parsers, splitting protocols, metrics, tuning and reports.
//!
//! [`run_eval`] is what `vitrina eval` calls: parse → split → (tune on a validation split
//! of the training data) → train → score → [`Report`]. [`Split::export`] and
//! [`evaluate_lists`] let an external peer be scored on the same split with the same code.

pub mod config;
pub mod data;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod split;
mod tune;

pub use config::{BlendConfig, BlendPart, ModelConfig, TrainCache, TrainData};
pub use data::{DataFormat, Dataset};
pub use metrics::MeanStderr;
pub use report::{ModelReport, Report, METRICS};
pub use runner::{
    evaluate, evaluate_lists, run_eval, run_eval_on_split, user_metrics, EvalOptions, Metrics, Progress,
    ALL_MODELS, LIST_LEN,
};
pub use split::{holdout_size, Protocol, Split, SPLIT_FILES};
