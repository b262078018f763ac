//! Attention rollout (Abnar & Zuidema 2020): the product over layers of
//! `½ (mean-head attention) + ½ I`, which follows information through the residual stream.

use crate::attribution::engine::{attention, Prepared};
use crate::attribution::{Attribution, Family, Method, MethodInfo};
use crate::error::Result;

#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionRollout;

pub static INFO: MethodInfo = MethodInfo {
    name: "attention-rollout",
    aliases: &[],
    summary: "attention rollout over all layers",
    cost: "1 forward",
    family: Family::Attention,
    options: &[],
    build: |_| Ok(Box::new(AttentionRollout)),
};

impl Method for AttentionRollout {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn run(&self, p: &Prepared) -> Result<Attribution> {
        let (maps, f) = attention::attention_maps(p)?;
        let (len, heads) = (p.ids.len(), p.model.info.attention_heads);
        let map = attention::rollout(&maps, heads, len)?;
        let scores = attention::token_scores(&map, &attention::query_weights(&p.target, len));
        let mut a = p.token_level(INFO.name, scores, f);
        if p.include_map {
            a.set_extra("attention", attention::nested(&maps, heads, len));
        }
        Ok(a)
    }
}
