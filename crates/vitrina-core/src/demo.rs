//! The demo shop loaded on the first start of an empty store: users `user-1`…`user-5`,
//! products `product-1`…`product-10` and a little activity, so that the very first request
//! already returns something.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use crate::{ActivityType, EventId, NewActivity, Price, Product, ProductId, User, UserId};

const PRODUCTS: [(&str, &str, &str); 10] = [
    ("Смартфон Galaxy S23", "Смартфоны", "79999.00"),
    ("Смартфон iPhone 15", "Смартфоны", "99999.00"),
    ("Ноутбук MacBook Air M2", "Ноутбуки", "119999.00"),
    ("Ноутбук Lenovo ThinkPad X1", "Ноутбуки", "149999.00"),
    ("Беспроводные наушники AirPods Pro", "Аудио", "24999.00"),
    ("Наушники Sony WH-1000XM5", "Аудио", "34999.00"),
    ("Чехол для смартфона", "Аксессуары", "1499.00"),
    ("Рюкзак для ноутбука", "Аксессуары", "2499.00"),
    ("Зарядное устройство USB-C 65W", "Аксессуары", "3999.00"),
    ("Умные часы Apple Watch", "Гаджеты", "39999.00"),
];

const USERS: [&str; 5] = ["Анна", "Борис", "Вера", "Глеб", "Дарья"];

/// (user, activity, product, hours ago)
const ACTIVITY: [(u8, ActivityType, u8, i64); 18] = [
    (1, ActivityType::View, 3, 30),
    (1, ActivityType::View, 4, 29),
    (2, ActivityType::View, 3, 28),
    (2, ActivityType::View, 8, 27),
    (2, ActivityType::Purchase, 8, 26),
    (3, ActivityType::View, 4, 25),
    (3, ActivityType::AddToCart, 8, 24),
    (3, ActivityType::View, 9, 23),
    (4, ActivityType::View, 1, 22),
    (4, ActivityType::View, 7, 21),
    (4, ActivityType::Purchase, 7, 20),
    (4, ActivityType::View, 5, 19),
    (5, ActivityType::View, 2, 18),
    (5, ActivityType::AddToCart, 7, 17),
    (5, ActivityType::View, 5, 16),
    (5, ActivityType::Like, 10, 15),
    (1, ActivityType::Click, 8, 14),
    (3, ActivityType::View, 3, 13),
];

pub fn products(now: DateTime<Utc>) -> Vec<Product> {
    PRODUCTS
        .iter()
        .enumerate()
        .map(|(i, (name, category, price))| Product {
            id: ProductId::parse(&format!("product-{}", i + 1)).expect("demo ids are valid"),
            name: name.to_string(),
            category: category.to_string(),
            price: price.parse::<Price>().expect("demo prices are valid"),
            attributes: Map::new(),
            in_stock: true,
            hidden: false,
            created_at: now,
            updated_at: now,
        })
        .collect()
}

pub fn users(now: DateTime<Utc>) -> Vec<User> {
    USERS
        .iter()
        .enumerate()
        .map(|(i, name)| User {
            id: UserId::parse(&format!("user-{}", i + 1)).expect("demo ids are valid"),
            name: Some(name.to_string()),
            attributes: Map::new(),
            created_at: now,
        })
        .collect()
}

pub fn activity(now: DateTime<Utc>) -> Vec<NewActivity> {
    ACTIVITY
        .iter()
        .enumerate()
        .map(|(i, (user, kind, product, hours_ago))| NewActivity {
            event_id: EventId::parse(&format!("demo-{}", i + 1)).expect("demo ids are valid"),
            user_id: UserId::parse(&format!("user-{user}")).expect("demo ids are valid"),
            activity_type: *kind,
            product_id: Some(ProductId::parse(&format!("product-{product}")).expect("demo ids are valid")),
            metadata: match json!({"source": "demo"}) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            timestamp: now - Duration::hours(*hours_ago),
        })
        .collect()
}
