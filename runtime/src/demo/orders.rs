//! A realistic stream of order events for the orders scenario, deterministic
//! for a seed: skewed categories, products and customers (a few are far more
//! popular), mixed statuses, 2% exact re-sends of an earlier event
//! (duplicates), 0.5% malformed JSON, and 3% late events whose event time is
//! one to three hours behind the stream. Tests recompute the expected gold
//! tables from the same events.

use super::random::{Rng, START_MILLIS, chrono_like_rfc3339};
use serde_json::json;

/// What an event is, for tests computing expected results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A well-formed, first-time event.
    Valid,
    /// An exact re-send of an earlier event (same `event_id`).
    Duplicate,
    /// Not valid JSON, or not the orders schema.
    Malformed,
}

/// One generated Kafka message.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    /// Message key (the order id).
    pub key: Vec<u8>,
    /// Message value (JSON).
    pub value: Vec<u8>,
    /// What it is.
    pub kind: EventKind,
    /// The parsed order, for valid events and duplicates.
    pub order: Option<Order>,
}

/// The fields of a well-formed order that tests aggregate on.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Unique per first-time event.
    pub event_id: String,
    /// `PAID`, `NEW`, `SHIPPED` or `CANCELLED`.
    pub status: String,
    /// Category of the product.
    pub category: String,
    /// Product id.
    pub product_id: String,
    /// Product name.
    pub product_name: String,
    /// Customer id.
    pub customer_id: String,
    /// Units.
    pub quantity: i64,
    /// Price per unit.
    pub unit_price: f64,
}

const CATEGORIES: [&str; 6] = ["Home", "Kitchen", "Electronics", "Books", "Garden", "Toys"];
const COUNTRIES: [&str; 6] = ["DE", "ES", "FR", "NL", "US", "PL"];
const FIRST: [&str; 8] = ["Ana", "Ben", "Chen", "Dee", "Eli", "Fay", "Gus", "Hana"];
const LAST: [&str; 6] = ["Ruiz", "Park", "Okafor", "Novak", "Silva", "Berg"];
const NOUNS: [&str; 10] = [
    "Lamp", "Mug", "Kettle", "Cable", "Novel", "Rake", "Puzzle", "Chair", "Pan", "Speaker",
];

/// `count` events for `seed`.
pub fn generate(count: usize, seed: u64) -> Vec<OrderEvent> {
    let mut rng = Rng(seed ^ 0x6F72_6465_7273);
    let mut events: Vec<OrderEvent> = Vec::with_capacity(count);
    let mut next_id = 1u64;
    for i in 0..count {
        let roll = rng.unit();
        if roll < 0.005 {
            events.push(malformed(&mut rng, i));
            continue;
        }
        if roll < 0.025 {
            let earlier: Vec<&OrderEvent> = events
                .iter()
                .filter(|e| e.kind == EventKind::Valid)
                .collect();
            if !earlier.is_empty() {
                let original = earlier[rng.below(earlier.len() as u64) as usize].clone();
                events.push(OrderEvent {
                    kind: EventKind::Duplicate,
                    ..original
                });
                continue;
            }
        }
        events.push(valid(&mut rng, i, next_id));
        next_id += 1;
    }
    events
}

fn valid(rng: &mut Rng, index: usize, id: u64) -> OrderEvent {
    let category_index = rng.skewed(CATEGORIES.len() as u64) as usize;
    let category = CATEGORIES[category_index];
    let product = rng.skewed(40);
    let product_id = format!("p-{category_index}{product:02}");
    let product_name = format!(
        "{} {}",
        category,
        NOUNS[(product % NOUNS.len() as u64) as usize]
    );
    let unit_price =
        ((product * 7 + category_index as u64 * 13) % 190 + 5) as f64 + 0.25 * (product % 4) as f64;
    let customer = rng.skewed(500);
    let customer_id = format!("c-{customer}");
    let status = match rng.below(100) {
        0..60 => "PAID",
        60..75 => "NEW",
        75..90 => "SHIPPED",
        _ => "CANCELLED",
    };
    let quantity = 1 + rng.skewed(5) as i64;
    let late = rng.unit() < 0.03;
    let mut millis = START_MILLIS + index as i64 * 250;
    if late {
        millis -= 3_600_000 + rng.below(7_200_000) as i64;
    }
    let event_time = chrono_like_rfc3339(millis);
    let event_id = format!("e-{id:08}");
    let order_id = format!("o-{:08}", id + 50_000);
    let value = json!({
        "event_id": event_id,
        "order_id": order_id,
        "status": status,
        "event_time": event_time,
        "customer": {
            "id": customer_id,
            "name": format!("{} {}", FIRST[(customer % 8) as usize], LAST[(customer % 6) as usize]),
            "country": COUNTRIES[(customer % 6) as usize],
        },
        "product": {"id": product_id, "name": product_name, "category": category},
        "quantity": quantity,
        "unit_price": unit_price,
        "currency": "EUR",
        "tags": if quantity > 3 { json!(["bulk"]) } else { json!([]) },
    });
    OrderEvent {
        key: order_id.into_bytes(),
        value: serde_json::to_vec(&value).expect("orders serialize"),
        kind: EventKind::Valid,
        order: Some(Order {
            event_id,
            status: status.to_string(),
            category: category.to_string(),
            product_id,
            product_name,
            customer_id,
            quantity,
            unit_price,
        }),
    }
}

fn malformed(rng: &mut Rng, index: usize) -> OrderEvent {
    let value = match rng.below(4) {
        0 => br#"{"event_id": "e-broken", "status": "PAID", "quantity": 2,"#.to_vec(),
        1 => b"not json at all".to_vec(),
        2 => br#"{"event_id": "e-typo", "order_id": "o-1", "status": "PAID", "event_time": "yesterday", "customer": {"id": "c-1"}, "product": {"id": "p", "name": "n", "category": "Home"}, "quantity": 1, "unit_price": 1.0}"#.to_vec(),
        _ => br#"{"event_id": "e-noqty", "order_id": "o-2", "status": "PAID", "event_time": "2024-05-01T10:00:00Z", "customer": {"id": "c-1"}, "product": {"id": "p", "name": "n", "category": "Home"}, "quantity": "three", "unit_price": 1.0}"#.to_vec(),
    };
    OrderEvent {
        key: format!("bad-{index}").into_bytes(),
        value,
        kind: EventKind::Malformed,
        order: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_with_the_advertised_mix() {
        let events = generate(20_000, 7);
        assert_eq!(events, generate(20_000, 7));
        let share =
            |kind| events.iter().filter(|e| e.kind == kind).count() as f64 / events.len() as f64;
        assert!(
            (0.015..0.025).contains(&share(EventKind::Duplicate)),
            "{}",
            share(EventKind::Duplicate)
        );
        assert!(
            (0.003..0.007).contains(&share(EventKind::Malformed)),
            "{}",
            share(EventKind::Malformed)
        );
        let ids: std::collections::HashSet<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::Valid)
            .map(|e| e.order.as_ref().unwrap().event_id.clone())
            .collect();
        assert_eq!(
            ids.len(),
            events.iter().filter(|e| e.kind == EventKind::Valid).count()
        );
        let home = events
            .iter()
            .filter(|e| e.order.as_ref().is_some_and(|o| o.category == "Home"))
            .count();
        let toys = events
            .iter()
            .filter(|e| e.order.as_ref().is_some_and(|o| o.category == "Toys"))
            .count();
        assert!(home > 3 * toys, "categories are skewed: {home} vs {toys}");
    }
}
