//! DeepLIFT-SHAP (Lundberg & Lee 2017): DeepLIFT's rescale rule against every baseline of a
//! set, averaged; all pairs run in one batch.

use super::{common, deeplift};
use crate::attribution::engine::{Baseline, Prepared};
use crate::attribution::{Attribution, Family, Method, MethodInfo, Values};
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct DeepLiftShap {
    pub baselines: Vec<Baseline>,
}

pub static INFO: MethodInfo = MethodInfo {
    name: "deeplift-shap",
    aliases: &[],
    summary: "DeepLIFT averaged over --baselines",
    cost: "1 forward + 1 backward of a batch of 2 x baselines",
    family: Family::Rule,
    options: &[common::BASELINES],
    build: |v| Ok(Box::new(DeepLiftShap::from_values(v)?)),
};

impl DeepLiftShap {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(DeepLiftShap {
            baselines: Baseline::parse_set(&v.get::<String>(&common::BASELINES)?)?,
        })
    }
}

impl Default for DeepLiftShap {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for DeepLiftShap {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let r = deeplift::rescale(p, &p.baseline_set(&self.baselines)?)?;
        Ok(p.referenced(INFO.name, r.map, r.f_x, r.f_ref))
    }
}
