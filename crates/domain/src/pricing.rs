//! R1: what a run costs, and which parameters a model takes.

use serde::Serialize;

use crate::catalog::{Model, Pricing};
use crate::credits::Credits;

/// A parameter as it arrived: absent, a whole number, or something else (a string, a fraction,
/// a number too large for i64). The edge keeps "something else" so that the judging order
/// (429 before 422) stays with the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Param {
    #[default]
    Absent,
    Int(i64),
    Invalid,
}

/// The parameters of a run request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunParams {
    pub images: Param,
    pub duration_seconds: Param,
}

/// A run's parameters after validation against its model, and its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Priced {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    pub cost: Credits,
}

impl Priced {
    /// Generations for a count trial (R9): images for per-image models, one run otherwise.
    pub fn generations(&self) -> i64 {
        self.images.unwrap_or(1)
    }
}

fn whole(name: &str, p: Param, min: i64, max: i64) -> Result<Option<i64>, String> {
    match p {
        Param::Absent => Ok(None),
        Param::Int(v) if (min..=max).contains(&v) => Ok(Some(v)),
        Param::Int(v) => Err(format!("{name} must be between {min} and {max}, not {v}")),
        Param::Invalid => Err(format!("{name} must be a whole number between {min} and {max}")),
    }
}

/// R1: the cost of `params` on `model`, or why they are not acceptable (INVALID_PARAMETERS).
/// `images` belongs only to per-image models (default 1), `duration_seconds` only to
/// per-second models (required), and a per-call model takes neither.
pub fn price(model: &Model, params: RunParams) -> Result<Priced, String> {
    let (min, max) = model.limits.map(|l| (l.min, l.max)).unwrap_or((1, 1));
    let (images, duration_seconds, units) = match model.pricing {
        Pricing::PerImage => {
            if params.duration_seconds != Param::Absent {
                return Err(format!("{} is priced per image: it takes no duration_seconds", model.id));
            }
            let images = whole("images", params.images, min, max)?.unwrap_or(1);
            (Some(images), None, images)
        }
        Pricing::PerSecond => {
            if params.images != Param::Absent {
                return Err(format!("{} is priced per second: it takes no images", model.id));
            }
            let seconds = whole("duration_seconds", params.duration_seconds, min, max)?
                .ok_or_else(|| format!("{} is priced per second: duration_seconds is required", model.id))?;
            (None, Some(seconds), seconds)
        }
        Pricing::PerCall => {
            if params.images != Param::Absent || params.duration_seconds != Param::Absent {
                return Err(format!("{} is priced per call: it takes neither images nor duration_seconds", model.id));
            }
            (None, None, 1)
        }
    };
    let cost =
        model.credits.checked_mul(units).ok_or_else(|| "the cost of these parameters is out of range".to_string())?;
    Ok(Priced { images, duration_seconds, cost })
}

/// R10: the actual parameters of a completion, which may not exceed what was requested.
/// Absent parameters mean "as requested".
pub fn price_actual(model: &Model, requested: &Priced, actual: RunParams) -> Result<Priced, String> {
    let merged = RunParams {
        images: match (actual.images, requested.images) {
            (Param::Absent, Some(v)) => Param::Int(v),
            (p, _) => p,
        },
        duration_seconds: match (actual.duration_seconds, requested.duration_seconds) {
            (Param::Absent, Some(v)) => Param::Int(v),
            (p, _) => p,
        },
    };
    let priced = price(model, merged)?;
    if let (Some(a), Some(r)) = (priced.images, requested.images)
        && a > r
    {
        return Err(format!("the run requested {r} images; it cannot complete with {a}"));
    }
    if let (Some(a), Some(r)) = (priced.duration_seconds, requested.duration_seconds)
        && a > r
    {
        return Err(format!("the run requested {r} seconds; it cannot complete with {a}"));
    }
    Ok(priced)
}
