//! What an experiment is: the spec a client posts ([`ExperimentSpec`]), its validation,
//! and the stored [`Experiment`] with its lifecycle (draft → running → stopped) and the
//! log of every traffic change.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fewest and most variants an experiment may have.
pub const MIN_VARIANTS: usize = 2;
pub const MAX_VARIANTS: usize = 10;
/// Longest experiment and variant name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_VARIANT_NAME_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// An experiment as a client posts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    pub name: String,
    pub variants: Vec<VariantSpec>,
    #[serde(default)]
    pub goal: Goal,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end_at: Option<DateTime<Utc>>,
    /// Share of traffic every variant keeps in bandit mode; `floor * variants <= 1`.
    #[serde(default = "default_floor")]
    pub exploration_floor: f64,
    /// How long after an impression an outcome without a recommendation id is still
    /// attributed to it (1..=720).
    #[serde(default = "default_window")]
    pub attribution_window_hours: u32,
    /// Automation steps (bandit, weight tuning) judge only lists served at least this long
    /// ago (0..=1440, at most the attribution window): a list too young to have been clicked
    /// would count as a failure, and such lists belong mostly to the variant that just
    /// gained traffic.
    #[serde(default = "default_judge_after")]
    pub judge_after_minutes: u32,
    /// Name of the control variant; the first variant when omitted.
    #[serde(default)]
    pub control: Option<String>,
}

fn default_floor() -> f64 {
    0.05
}

fn default_window() -> u32 {
    24
}

fn default_judge_after() -> u32 {
    10
}

/// Longest `judgeAfterMinutes`: one day.
pub const MAX_JUDGE_AFTER_MINUTES: u32 = 1440;

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantSpec {
    /// 1..=64 characters of `[A-Za-z0-9_-]`, unique within the experiment.
    pub name: String,
    /// Relative share of traffic (> 0); shares are normalised to sum 1. Give it for every
    /// variant or for none (equal split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<u64>,
    /// A partial ranking config the server merges over its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The metric an experiment is judged (and a bandit steered) by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    #[default]
    Ctr,
    AddToCartRate,
    ConversionRate,
    RevenuePerMille,
}

impl Goal {
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::Ctr => "ctr",
            Goal::AddToCartRate => "add_to_cart_rate",
            Goal::ConversionRate => "conversion_rate",
            Goal::RevenuePerMille => "revenue_per_mille",
        }
    }

    /// Whether the goal is a proportion of item impressions (all but revenue per mille).
    pub fn is_proportion(self) -> bool {
        self != Goal::RevenuePerMille
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fixed shares, or shares steered by Thompson sampling on the goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Fixed,
    Bandit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Running,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Stopped => "stopped",
        })
    }
}

/// One entry of an experiment's allocation log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationChange {
    pub at: DateTime<Utc>,
    pub traffic: Vec<f64>,
    pub reason: String,
}

/// A spec problem, named by its JSON path (`variants[1].name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field} {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError { field: field.into(), message: message.into() }
    }
}

/// A lifecycle step that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("cannot move an experiment from {from} to {to}")]
    Status { from: Status, to: Status },
    #[error("cannot start an experiment whose endAt ({end_at}) has passed")]
    Ended { end_at: DateTime<Utc> },
}

impl ExperimentSpec {
    /// The first problem of [`ExperimentSpec::problems`], if any.
    pub fn validate(&self) -> Result<(), SpecError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem of the spec, in field order (for an error listing all of them).
    pub fn problems(&self) -> Vec<SpecError> {
        let mut errs = Vec::new();
        let name_chars = self.name.chars().count();
        if self.name.trim().is_empty() {
            errs.push(SpecError::new("name", "must not be blank"));
        } else if name_chars > MAX_NAME_CHARS {
            errs.push(SpecError::new("name", format!("must be at most {MAX_NAME_CHARS} characters")));
        }
        let n = self.variants.len();
        if !(MIN_VARIANTS..=MAX_VARIANTS).contains(&n) {
            errs.push(SpecError::new(
                "variants",
                format!("must have {MIN_VARIANTS} to {MAX_VARIANTS} variants, got {n}"),
            ));
        }
        let given = self.variants.iter().filter(|v| v.traffic.is_some()).count();
        if given != 0 && given != n {
            errs.push(SpecError::new("variants", "traffic must be given for every variant or for none"));
        }
        for (i, v) in self.variants.iter().enumerate() {
            errs.extend(variant_problems(i, v));
            if self.variants[..i].iter().any(|w| w.name == v.name) {
                errs.push(SpecError::new(
                    format!("variants[{i}].name"),
                    format!("{:?} is not unique", v.name),
                ));
            }
        }
        if let (Some(start), Some(end)) = (self.start_at, self.end_at) {
            if end <= start {
                errs.push(SpecError::new("endAt", "must be after startAt"));
            }
        }
        let floor = self.exploration_floor;
        if !floor.is_finite() || !(0.0..1.0).contains(&floor) {
            errs.push(SpecError::new("explorationFloor", "must be at least 0 and below 1"));
        } else if floor * n as f64 > 1.0 + 1e-9 {
            errs.push(SpecError::new(
                "explorationFloor",
                format!("times the number of variants ({n}) must not exceed 1"),
            ));
        }
        let window_ok = (1..=720).contains(&self.attribution_window_hours);
        if !window_ok {
            errs.push(SpecError::new("attributionWindowHours", "must be 1 to 720"));
        }
        if self.judge_after_minutes > MAX_JUDGE_AFTER_MINUTES {
            errs.push(SpecError::new("judgeAfterMinutes", format!("must be 0 to {MAX_JUDGE_AFTER_MINUTES}")));
        } else if window_ok && self.judge_after_minutes > self.attribution_window_hours * 60 {
            errs.push(SpecError::new("judgeAfterMinutes", "must not exceed the attribution window"));
        }
        if let Some(control) = &self.control {
            if !self.variants.iter().any(|v| &v.name == control) {
                errs.push(SpecError::new("control", format!("{control:?} is not one of the variants")));
            }
        }
        errs
    }

    /// Traffic shares normalised to sum 1 (equal split when none is given). Meaningful
    /// only for a valid spec.
    pub fn normalised_traffic(&self) -> Vec<f64> {
        let n = self.variants.len();
        let raw: Vec<f64> = self.variants.iter().map(|v| v.traffic.unwrap_or(1.0)).collect();
        let total: f64 = raw.iter().sum();
        if n == 0 || !total.is_finite() || total <= 0.0 {
            return vec![1.0 / n.max(1) as f64; n];
        }
        raw.iter().map(|t| t / total).collect()
    }
}

fn variant_problems(i: usize, v: &VariantSpec) -> Vec<SpecError> {
    let mut errs = Vec::new();
    let field = |f: &str| format!("variants[{i}].{f}");
    let chars = v.name.chars().count();
    if chars == 0 || chars > MAX_VARIANT_NAME_CHARS {
        errs.push(SpecError::new(field("name"), format!("must be 1 to {MAX_VARIANT_NAME_CHARS} characters")));
    } else if !v.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        errs.push(SpecError::new(field("name"), "may only contain A-Z, a-z, 0-9, '_' and '-'"));
    }
    if let Some(t) = v.traffic {
        if !t.is_finite() || t <= 0.0 {
            errs.push(SpecError::new(field("traffic"), "must be a finite number above 0"));
        }
    }
    if v.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        errs.push(SpecError::new(
            field("description"),
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    errs
}

/// A stored experiment: the spec's fields (with the control resolved), its salt, status,
/// and current traffic allocation with the log of every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub variants: Vec<VariantSpec>,
    pub goal: Goal,
    pub mode: Mode,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub exploration_floor: f64,
    pub attribution_window_hours: u32,
    /// Experiments stored before this field existed read the default.
    #[serde(default = "default_judge_after")]
    pub judge_after_minutes: u32,
    /// Name of the control variant.
    pub control: String,
    /// Fixed at creation; part of the assignment hash, so changing it reassigns everyone.
    pub salt: String,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Current allocation, one share per variant, summing to 1.
    pub traffic: Vec<f64>,
    pub allocation_log: Vec<AllocationChange>,
}

/// A random 128-bit salt in hex, for [`Experiment::new`].
pub fn random_salt() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Experiment {
    /// A draft experiment from a valid spec. The initial allocation is logged.
    pub fn new(
        id: impl Into<String>,
        spec: ExperimentSpec,
        salt: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<Experiment, SpecError> {
        spec.validate()?;
        let salt = salt.into();
        if salt.is_empty() {
            return Err(SpecError::new("salt", "must not be empty"));
        }
        let traffic = spec.normalised_traffic();
        let control = spec.control.clone().unwrap_or_else(|| spec.variants[0].name.clone());
        Ok(Experiment {
            id: id.into(),
            name: spec.name,
            variants: spec.variants,
            goal: spec.goal,
            mode: spec.mode,
            start_at: spec.start_at,
            end_at: spec.end_at,
            exploration_floor: spec.exploration_floor,
            attribution_window_hours: spec.attribution_window_hours,
            judge_after_minutes: spec.judge_after_minutes,
            control,
            salt,
            status: Status::Draft,
            created_at: now,
            started_at: None,
            stopped_at: None,
            allocation_log: vec![AllocationChange {
                at: now,
                traffic: traffic.clone(),
                reason: "initial allocation".to_owned(),
            }],
            traffic,
        })
    }

    /// The spec this experiment was created from (control made explicit).
    pub fn spec(&self) -> ExperimentSpec {
        ExperimentSpec {
            name: self.name.clone(),
            variants: self.variants.clone(),
            goal: self.goal,
            mode: self.mode,
            start_at: self.start_at,
            end_at: self.end_at,
            exploration_floor: self.exploration_floor,
            attribution_window_hours: self.attribution_window_hours,
            judge_after_minutes: self.judge_after_minutes,
            control: Some(self.control.clone()),
        }
    }

    /// The spec's shares, normalised: what [`crate::bandit::revert`] goes back to.
    pub fn initial_traffic(&self) -> Vec<f64> {
        self.spec().normalised_traffic()
    }

    pub fn variant_index(&self, name: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.name == name)
    }

    pub fn control_index(&self) -> usize {
        self.variant_index(&self.control).unwrap_or(0)
    }

    pub fn attribution_window(&self) -> Duration {
        Duration::hours(i64::from(self.attribution_window_hours))
    }

    /// How old a list must be before the bandit judges it (`judgeAfterMinutes`).
    pub fn judge_after(&self) -> Duration {
        Duration::minutes(i64::from(self.judge_after_minutes))
    }

    /// The variant a visitor sees under the current allocation (see [`mod@crate::assign`]).
    pub fn variant_for(&self, visitor: &str) -> &VariantSpec {
        &self.variants[crate::assign::assign(&self.traffic, &self.salt, visitor)]
    }

    /// Running, and `now` inside `[startAt, endAt)` where those are set.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Running
            && self.start_at.is_none_or(|s| now >= s)
            && self.end_at.is_none_or(|e| now < e)
    }

    /// Draft → running. Refused from any other status, or once `endAt` has passed.
    pub fn start(&mut self, now: DateTime<Utc>) -> Result<(), TransitionError> {
        if self.status != Status::Draft {
            return Err(TransitionError::Status { from: self.status, to: Status::Running });
        }
        if let Some(end_at) = self.end_at.filter(|e| *e <= now) {
            return Err(TransitionError::Ended { end_at });
        }
        self.status = Status::Running;
        self.started_at = Some(now);
        Ok(())
    }

    /// Running → stopped. A stopped experiment cannot be restarted (create a new one: its
    /// results would otherwise mix two periods).
    pub fn stop(&mut self, now: DateTime<Utc>) -> Result<(), TransitionError> {
        if self.status != Status::Running {
            return Err(TransitionError::Status { from: self.status, to: Status::Stopped });
        }
        self.status = Status::Stopped;
        self.stopped_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
