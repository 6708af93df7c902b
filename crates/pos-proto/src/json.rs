//! The JSON objects posd's facts are shown as: `posctl --json` prints them
//! and posd's HTTP API serves them, so both say the same thing the same way.
//! Field names and order are part of the interface; only ever add fields.

use crate::{ClusterInfo, StatusInfo, ValidatorInfo};
use pos_core::block::format_timestamp;
use pos_core::lottery::Candidate;
use pos_core::{Block, Digest, LotteryError, RoundRecord, Secret};
use serde_json::{json, Value};

/// A block in the tutorial's shape (`Index`, `Timestamp`, `BPM`, ...).
pub fn block(b: &Block) -> Value {
    serde_json::to_value(b.json()).expect("blocks serialize")
}

/// A validator and whether it is connected; slashing details when slashed.
pub fn validator(info: &ValidatorInfo) -> Value {
    let v = &info.validator;
    let mut obj = json!({
        "address": v.address.to_string(),
        "balance": v.balance,
        "status": v.status().as_str(),
        "blocks_won": v.blocks_won,
        "connected": info.connected,
        "registered_at": format_timestamp(v.registered_at_ms),
    });
    if let Some(s) = &v.slashed {
        obj["slashed_at"] = json!(format_timestamp(s.at_ms));
        obj["slash_reason"] = json!(s.reason);
        obj["forfeited"] = json!(s.forfeited);
    }
    obj
}

/// With `node_id`, `role` and `leader_id` on a cluster node.
pub fn status(s: &StatusInfo) -> Value {
    let mut obj = json!({
        "version": s.version,
        "pid": s.pid,
        "height": s.height,
        "tip_hash": s.tip_hash.to_string(),
        "listen": s.listen,
        "admin_socket": s.admin_socket,
        "data_dir": s.data_dir,
        "validators_active": s.validators_active,
        "validators_slashed": s.validators_slashed,
        "connected": s.connected,
        "connections": s.connections,
        "pending_proposals": s.pending_proposals,
        "next_round_in_ms": s.next_round_in_ms,
        "round_interval_ms": s.round_interval_ms,
        "uptime_secs": s.uptime_secs,
        "data_size_bytes": s.data_size_bytes,
        "lottery_commitment": s.lottery_commitment.to_string(),
    });
    weighting(&mut obj, &s.weighting);
    if let Some(c) = &s.cluster {
        obj["node_id"] = json!(c.node_id);
        obj["role"] = json!(c.role);
        obj["leader_id"] = json!(c.leader_id);
    }
    obj
}

/// Adds `lottery_weighting` and the parameters its rule uses to `obj`.
pub fn weighting(obj: &mut Value, w: &pos_core::Weighting) {
    use pos_core::Weighting;
    obj["lottery_weighting"] = json!(w.name());
    match *w {
        Weighting::Stake => {}
        Weighting::StakeAge { age_window } => obj["age_window"] = json!(age_window),
        Weighting::StakeWork {
            work_bits,
            work_bonus_max,
        } => {
            obj["work_bits"] = json!(work_bits);
            obj["work_bonus_max"] = json!(work_bonus_max);
        }
    }
}

/// A node's view of its cluster (SPEC §9's keys).
pub fn cluster(c: &ClusterInfo) -> Value {
    json!({
        "node_id": c.node_id,
        "role": c.role,
        "term": c.term,
        "leader_id": c.leader_id,
        "committed": c.committed,
        "applied": c.applied,
        "members": c.members.iter().map(|m| json!({
            "node_id": m.node_id,
            "addr": m.addr,
            "voter": m.voter,
        })).collect::<Vec<_>>(),
    })
}

/// One candidate of a draw: its stake when the round closed and its proposal.
pub fn candidate(c: &Candidate) -> Value {
    json!({"address": c.address.to_string(), "stake": c.stake, "bpm": c.bpm})
}

/// A stored draw with everything needed to re-check it (docs/LOTTERY.md):
/// the commitment its reveal must answer (`None` under lottery v1), and the
/// outcome of the caller's own replay of it (`record.replay(prev_hash,
/// commitment)`). u128 values are strings: JSON numbers lose digits past
/// 2^53 in most readers.
pub fn round(
    record: &RoundRecord,
    prev_hash: &Digest,
    commitment: Option<&Digest>,
    replay: &Result<(), LotteryError>,
) -> Value {
    json!({
        "index": record.index,
        "prev_hash": prev_hash.to_string(),
        "lottery": record.rule.version(),
        "commitment": commitment.map(ToString::to_string),
        "reveal": record.rule.reveal().map(Secret::to_hex),
        "seed": record.seed.to_string(),
        "total_stake": record.total_stake().to_string(),
        "ticket": record.ticket.to_string(),
        "winner": record.candidates.get(record.winner).map(|c| c.address.to_string()),
        "candidates": candidates(&record.candidates, &record.weights),
        "next_commitment": record.rule.next_commitment().map(|c| c.to_string()),
        "replay_ok": replay.is_ok(),
        "replay_error": replay.as_ref().err().map(ToString::to_string),
        "weighting": record.weighting.name(),
        "total_weight": record.total_weight().to_string(),
    })
}

/// Candidates with their weights and why (`weights` aligned with them, or
/// empty under `stake`: weight = stake, not repeated).
pub fn candidates(
    candidates: &[Candidate],
    weights: &[pos_core::weighting::Weighed],
) -> Vec<Value> {
    candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut obj = candidate(c);
            if let Some(w) = weights.get(i) {
                weighed(&mut obj, w);
            }
            obj
        })
        .collect()
}

/// A candidate's `weight` (decimal string: it may pass 2^53) and why:
/// `age`, or `work_bits` (the nonce's leading zero bits) and `nonce` (a
/// decimal string, or null without one).
fn weighed(obj: &mut Value, w: &pos_core::weighting::Weighed) {
    use pos_core::weighting::Why;
    obj["weight"] = json!(w.weight.to_string());
    match w.why {
        Why::Stake => {}
        Why::Age(age) => obj["age"] = json!(age),
        Why::Work { nonce, zeros } => {
            obj["work_bits"] = json!(zeros);
            obj["nonce"] = json!(nonce.map(|n| n.to_string()));
        }
    }
}
