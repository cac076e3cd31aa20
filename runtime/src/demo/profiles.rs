//! Seed 002's Kafka multiplex for the profiles scenario, deterministic for a
//! seed: `user_info` change events (CDC of user profiles: `new`, `update`,
//! `delete`, keyed by user id) interleaved with `workout` and `bpm`
//! messages, as one stream over three topics.
//!
//! The user changes hold every case an SCD type 1 upsert must get right:
//! updates, deletes, re-inserts after a delete, exact re-sends (duplicates),
//! ties (two changes of a user with the same timestamp), late events (a
//! timestamp one to three hours behind the user's newest), and 1% bad events
//! (no `user_id`, an unknown `update_type`, a timestamp that is not one).
//! [`latest_state`] computes the expected table independently of Weir.

use super::random::{Rng, START_MILLIS, chrono_like_rfc3339};
use serde_json::json;
use std::collections::BTreeMap;

/// The topics of the multiplex.
pub const TOPICS: [&str; 3] = ["user_info", "workout", "bpm"];

const FIRST: [&str; 8] = ["Ana", "Ben", "Chen", "Dee", "Eli", "Fay", "Gus", "Hana"];
const LAST: [&str; 6] = ["Ruiz", "Park", "Okafor", "Novak", "Silva", "Berg"];
const CITIES: [(&str, &str); 5] = [
    ("Los Angeles", "CA"),
    ("Austin", "TX"),
    ("Denver", "CO"),
    ("Boston", "MA"),
    ("Seattle", "WA"),
];

/// One message of the multiplex.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// One of [`TOPICS`].
    pub topic: &'static str,
    /// The Kafka key (the user id as text, for every topic).
    pub key: Vec<u8>,
    /// The JSON value.
    pub value: Vec<u8>,
    /// For `user_info`: the change, when the event is well formed.
    pub change: Option<UserChange>,
}

/// A well-formed `user_info` event, as the tests need it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserChange {
    /// The user.
    pub user_id: i64,
    /// `new`, `update` or `delete`.
    pub update_type: &'static str,
    /// Milliseconds since the Unix epoch (the `timestamp` field, RFC 3339 in the message).
    pub millis: i64,
    /// The profile after the change (`null`s for a delete).
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State.
    pub state: Option<String>,
}

/// `count` messages over `users` users for `seed`: about 60% `user_info`.
pub fn multiplex(count: usize, users: u64, seed: u64) -> Vec<Message> {
    let mut rng = Rng(seed ^ 0x7573_6572_7321);
    let mut messages: Vec<Message> = Vec::with_capacity(count);
    // Per user: whether it exists now, and its newest change's time.
    let mut live: BTreeMap<i64, bool> = BTreeMap::new();
    let mut newest: BTreeMap<i64, i64> = BTreeMap::new();
    for index in 0..count {
        let clock = START_MILLIS + index as i64 * 1_000;
        let user_id = 10_000 + rng.skewed(users) as i64;
        let roll = rng.below(1000);
        let message = match roll {
            0..250 => workout(&mut rng, user_id, clock),
            250..400 => bpm(&mut rng, user_id, clock),
            400..410 => bad_change(&mut rng, user_id, clock),
            410..430 => match messages.iter().rev().find(|m| m.change.is_some()) {
                Some(earlier) => earlier.clone(), // an exact re-send
                None => continue,
            },
            _ => {
                let exists = live.get(&user_id).copied().unwrap_or(false);
                let update_type = match (exists, rng.below(100)) {
                    (false, _) => "new",
                    (true, 0..12) => "delete",
                    (true, _) => "update",
                };
                let previous = newest.get(&user_id).copied();
                let millis = match (previous, rng.below(100)) {
                    // A tie: the same timestamp as the user's newest change.
                    (Some(previous), 0..4) => previous,
                    // Late: behind the user's newest change.
                    (Some(previous), 4..9) => previous - 3_600_000 - rng.below(7_200_000) as i64,
                    _ => clock,
                };
                if previous.is_none_or(|p| millis > p) {
                    live.insert(user_id, update_type != "delete");
                    newest.insert(user_id, millis);
                }
                change(&mut rng, user_id, update_type, millis)
            }
        };
        messages.push(message);
    }
    messages
}

/// A well-formed `user_info` event of `user_id` at `millis`, its other
/// fields drawn from `seed`.
pub fn change_event(seed: u64, user_id: i64, update_type: &'static str, millis: i64) -> Message {
    change(
        &mut Rng(seed ^ user_id as u64),
        user_id,
        update_type,
        millis,
    )
}

fn change(rng: &mut Rng, user_id: i64, update_type: &'static str, millis: i64) -> Message {
    let deleted = update_type == "delete";
    let (city, state) = CITIES[rng.below(CITIES.len() as u64) as usize];
    let pick = |on: bool, value: String| (!on).then_some(value);
    let change = UserChange {
        user_id,
        update_type,
        millis,
        first_name: pick(deleted, FIRST[(user_id % 8) as usize].to_string()),
        last_name: pick(deleted, LAST[rng.below(6) as usize].to_string()),
        city: pick(deleted, city.to_string()),
        state: pick(deleted, state.to_string()),
    };
    let value = json!({
        "user_id": user_id,
        "update_type": update_type,
        "timestamp": chrono_like_rfc3339(millis),
        "first_name": change.first_name,
        "last_name": change.last_name,
        "address": {"city": change.city, "state": change.state},
    });
    Message {
        topic: "user_info",
        key: user_id.to_string().into_bytes(),
        value: serde_json::to_vec(&value).expect("changes serialize"),
        change: Some(change),
    }
}

fn bad_change(rng: &mut Rng, user_id: i64, clock: i64) -> Message {
    let timestamp = chrono_like_rfc3339(clock);
    let value = match rng.below(3) {
        0 => json!({"update_type": "update", "timestamp": timestamp, "first_name": "Nobody"}),
        1 => json!({"user_id": user_id, "update_type": "rename", "timestamp": timestamp}),
        _ => json!({"user_id": user_id, "update_type": "update", "timestamp": "last tuesday"}),
    };
    Message {
        topic: "user_info",
        key: user_id.to_string().into_bytes(),
        value: serde_json::to_vec(&value).expect("changes serialize"),
        change: None,
    }
}

fn workout(rng: &mut Rng, user_id: i64, clock: i64) -> Message {
    let value = json!({
        "user_id": user_id,
        "workout_id": rng.below(50),
        "timestamp": chrono_like_rfc3339(clock),
        "action": if rng.below(2) == 0 { "start" } else { "stop" },
        "session_id": rng.below(5),
    });
    Message {
        topic: "workout",
        key: user_id.to_string().into_bytes(),
        value: serde_json::to_vec(&value).expect("workouts serialize"),
        change: None,
    }
}

fn bpm(rng: &mut Rng, user_id: i64, clock: i64) -> Message {
    let value = json!({
        "device_id": user_id,
        "time": chrono_like_rfc3339(clock),
        "heartrate": 60 + rng.below(120),
    });
    Message {
        topic: "bpm",
        key: user_id.to_string().into_bytes(),
        value: serde_json::to_vec(&value).expect("bpm serialize"),
        change: None,
    }
}

/// Each user's newest change after `messages`, in produce order: the change
/// with the greatest timestamp, the first one on a tie (deletes included).
pub fn newest_changes(messages: &[Message]) -> BTreeMap<i64, &UserChange> {
    let mut newest: BTreeMap<i64, &UserChange> = BTreeMap::new();
    for change in messages.iter().filter_map(|m| m.change.as_ref()) {
        match newest.get(&change.user_id) {
            Some(held) if held.millis >= change.millis => {}
            _ => {
                newest.insert(change.user_id, change);
            }
        }
    }
    newest
}

/// The users table an SCD type 1 upsert must end with after `messages`:
/// each user's [`newest_changes`] entry, users whose newest change is a
/// delete absent.
pub fn latest_state(messages: &[Message]) -> BTreeMap<i64, UserChange> {
    newest_changes(messages)
        .into_iter()
        .filter(|(_, c)| c.update_type != "delete")
        .map(|(id, c)| (id, c.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_messages_with_every_case_present() {
        let messages = multiplex(5_000, 200, 3);
        assert_eq!(messages, multiplex(5_000, 200, 3));
        let changes: Vec<&UserChange> = messages.iter().filter_map(|m| m.change.as_ref()).collect();
        let count = |t: &str| changes.iter().filter(|c| c.update_type == t).count();
        assert!(count("new") > 100 && count("update") > 1000 && count("delete") > 100);
        let bad = messages
            .iter()
            .filter(|m| m.topic == "user_info" && m.change.is_none())
            .count();
        assert!(bad > 20, "{bad}");
        let mut newest: BTreeMap<i64, i64> = BTreeMap::new();
        let (mut late, mut ties, mut reinserts, mut dead) = (0, 0, 0, BTreeMap::new());
        for c in &changes {
            match newest.get(&c.user_id) {
                Some(&n) if c.millis < n => late += 1,
                Some(&n) if c.millis == n => ties += 1,
                _ => {
                    newest.insert(c.user_id, c.millis);
                }
            }
            if c.update_type == "new" && dead.get(&c.user_id) == Some(&true) {
                reinserts += 1;
            }
            dead.insert(c.user_id, c.update_type == "delete");
        }
        assert!(
            late > 50 && ties > 20 && reinserts > 20,
            "late {late}, ties {ties} (duplicates count), re-inserts {reinserts}"
        );
        let state = latest_state(&messages);
        assert!(state.len() > 100 && state.len() < 200, "{}", state.len());
    }
}
