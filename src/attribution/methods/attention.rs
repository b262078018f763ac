//! Attention as an explanation baseline: one layer's attention weights, one head or the mean
//! over heads, read at the query position the target reads.

use super::rpi::LAYER;
use crate::attribution::engine::{attention, Prepared};
use crate::attribution::{Attribution, Family, Kind, Method, MethodInfo, OptionSpec, Values};
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct Attention {
    /// `None`: the last layer.
    pub layer: Option<usize>,
    /// `None`: the mean over heads.
    pub head: Option<usize>,
}

const HEAD: OptionSpec = OptionSpec::new(
    "head",
    Kind::Count,
    None,
    "one attention head (default: the mean over heads)",
);

pub static INFO: MethodInfo = MethodInfo {
    name: "attention",
    aliases: &[],
    summary: "--layer's attention weights (--head, or the mean over heads)",
    cost: "1 forward",
    family: Family::Attention,
    options: &[LAYER, HEAD],
    build: |v| Ok(Box::new(Attention::from_values(v)?)),
};

impl Attention {
    pub fn from_values(v: &Values) -> Result<Self> {
        Ok(Attention {
            layer: v.get_opt(&LAYER)?,
            head: v.get_opt(&HEAD)?,
        })
    }
}

impl Default for Attention {
    fn default() -> Self {
        Self::from_values(&Values::new()).expect("the defaults are valid")
    }
}

impl Method for Attention {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let (maps, f) = attention::attention_maps(p)?;
        let (len, heads) = (p.ids.len(), p.model.info.attention_heads);
        let layer = attention::layer_index(p, self.layer)?;
        let map = attention::head_map(&maps[layer], heads, len, self.head)?;
        let scores = attention::token_scores(&map, &attention::query_weights(&p.target, len));
        let mut a = p.token_level(INFO.name, scores, f);
        a.set_extra("layer", layer);
        if let Some(h) = self.head {
            a.set_extra("head", h);
        }
        if p.include_map {
            a.set_extra("attention", attention::nested(&maps, heads, len));
        }
        Ok(a)
    }
}
