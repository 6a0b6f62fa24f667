//! The catalogue and the users on PostgreSQL.

use std::collections::HashMap;

use async_trait::async_trait;
use vitrina_core::{
    ports::{CatalogStore, DeletedUser, ProductQuery, StoreError, StoreResult, UserStore},
    Product, ProductId, User, UserId,
};

use super::{backend, begin, delete_counted, impressions::Op, rows, PgStore};

fn text(map: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(map.clone()).to_string()
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn insert_product(&self, product: Product) -> StoreResult<()> {
        let written = self.upsert(vec![product.clone()], false).await?;
        if written == 0 {
            return Err(StoreError::Conflict(format!("product {} already exists", product.id)));
        }
        Ok(())
    }

    async fn upsert_products(&self, products: Vec<Product>) -> StoreResult<()> {
        self.upsert(products, true).await.map(|_| ())
    }

    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>> {
        let sql = format!("SELECT {} FROM products WHERE id = $1", rows::PRODUCT_COLUMNS);
        Ok(self.query(&sql, &[&id.as_str()], rows::product).await?.pop())
    }

    async fn products(&self, q: ProductQuery) -> StoreResult<(Vec<Product>, u64)> {
        let sql = format!(
            "SELECT {} FROM products WHERE ($1::TEXT IS NULL OR category = $1) ORDER BY id LIMIT $2 OFFSET $3",
            rows::PRODUCT_COLUMNS
        );
        let category = q.category.as_deref();
        let items =
            self.query(&sql, &[&category, &(q.limit as i64), &(q.offset as i64)], rows::product).await?;
        let total = self
            .query(
                "SELECT COUNT(*) FROM products WHERE ($1::TEXT IS NULL OR category = $1)",
                &[&category],
                |r| Ok(r.get::<_, i64>(0) as u64),
            )
            .await?;
        Ok((items, total.first().copied().unwrap_or(0)))
    }

    async fn delete_product(&self, id: &ProductId) -> StoreResult<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM products WHERE id = $1", &[&id.as_str()]).await.map_err(backend)? > 0)
    }

    /// Counted by a trigger on every statement that writes `products` (schema version 3).
    async fn catalogue_revision(&self) -> StoreResult<Option<u64>> {
        let sql = "SELECT revision FROM catalogue_revision";
        Ok(self.query(sql, &[], |r| Ok(r.get::<_, i64>(0) as u64)).await?.first().copied())
    }
}

impl PgStore {
    /// Writes products in one statement; with `replace`, an existing id is updated (its
    /// creation time kept), else skipped. Returns the rows written. Repeated ids in one call
    /// end as if written one after the other.
    async fn upsert(&self, products: Vec<Product>, replace: bool) -> StoreResult<u64> {
        // Per id: the last entry, with the first one's creation time (a new product is created
        // by its first entry; the later ones update it).
        let mut last: HashMap<&str, (usize, i64)> = HashMap::with_capacity(products.len());
        for (i, p) in products.iter().enumerate() {
            let first = last.get(p.id.as_str()).map_or(p.created_at.timestamp_millis(), |&(_, c)| c);
            last.insert(p.id.as_str(), (i, first));
        }
        let mut keep: Vec<(usize, i64)> = last.into_values().collect();
        keep.sort_unstable();
        let created: Vec<i64> = keep.iter().map(|&(_, c)| c).collect();
        let keep: Vec<usize> = keep.into_iter().map(|(i, _)| i).collect();
        let column =
            |f: &dyn Fn(&Product) -> String| keep.iter().map(|&i| f(&products[i])).collect::<Vec<_>>();
        let ids = column(&|p| p.id.to_string());
        let names = column(&|p| p.name.clone());
        let categories = column(&|p| p.category.clone());
        let prices = column(&|p| p.price.as_str().to_string());
        let attributes = column(&|p| text(&p.attributes));
        let in_stock: Vec<bool> = keep.iter().map(|&i| products[i].in_stock).collect();
        let hidden: Vec<bool> = keep.iter().map(|&i| products[i].hidden).collect();
        let updated: Vec<i64> = keep.iter().map(|&i| products[i].updated_at.timestamp_millis()).collect();
        let on_conflict = if replace {
            "DO UPDATE SET name = excluded.name, category = excluded.category, price = excluded.price,
               attributes = excluded.attributes, in_stock = excluded.in_stock, hidden = excluded.hidden,
               updated_ms = excluded.updated_ms"
        } else {
            "DO NOTHING"
        };
        let sql = format!(
            "INSERT INTO products (id, name, category, price, attributes, in_stock, hidden, created_ms, updated_ms)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BOOLEAN[],
               $7::BOOLEAN[], $8::BIGINT[], $9::BIGINT[])
             ON CONFLICT (id) {on_conflict}"
        );
        let client = self.client().await?;
        client
            .execute(
                &sql,
                &[&ids, &names, &categories, &prices, &attributes, &in_stock, &hidden, &created, &updated],
            )
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn upsert_user(&self, user: User) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO users (id, name, attributes, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, attributes = excluded.attributes",
                &[
                    &user.id.as_str(),
                    &user.name,
                    &text(&user.attributes),
                    &user.created_at.timestamp_millis(),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {} FROM users WHERE id = $1", rows::USER_COLUMNS);
        Ok(self.query(&sql, &[&id.as_str()], rows::user).await?.pop())
    }

    async fn users(&self, offset: usize, limit: usize) -> StoreResult<(Vec<User>, u64)> {
        let sql = format!("SELECT {} FROM users ORDER BY id LIMIT $1 OFFSET $2", rows::USER_COLUMNS);
        let items = self.query(&sql, &[&(limit as i64), &(offset as i64)], rows::user).await?;
        let total = self.query("SELECT COUNT(*) FROM users", &[], |r| Ok(r.get::<_, i64>(0) as u64)).await?;
        Ok((items, total.first().copied().unwrap_or(0)))
    }

    /// Deletes the user's record and events in one transaction, under the log head's lock
    /// (the head counts the events), then their lists and outcomes (through the impression
    /// queue, so lists queued before the call go too). A failure between the two leaves
    /// impressions of a deleted user, which a repeated deletion removes.
    async fn delete_user(&self, id: &UserId) -> StoreResult<Option<DeletedUser>> {
        let (events, known) = {
            let mut client = self.client().await?;
            let tx = begin(&mut client).await?;
            let sql = "DELETE FROM events WHERE user_id = $1 RETURNING user_id";
            let events = delete_counted(&tx, sql, &[&id.as_str()]).await?.len() as u64;
            let known =
                tx.execute("DELETE FROM users WHERE id = $1", &[&id.as_str()]).await.map_err(backend)? > 0;
            tx.commit().await.map_err(backend)?;
            (events, known)
        };
        // The connection went back to the pool: the impression writer may need it.
        let impressions = self.impressions.ask(|r| Op::DeleteUser(id.clone(), r)).await?;
        Ok((known || events > 0 || impressions > 0).then_some(DeletedUser { events, impressions }))
    }
}
