//! Production behaviour of the real binary: graceful shutdown under load,
//! metrics, key fingerprints, a database outage, several instances behind
//! nginx. Each test runs `otpgate` processes of its own.

mod instance;
mod key_mismatch;
mod metrics;
mod nginx;
mod outage;
mod shutdown;

use diesel::{Connection, PgConnection, RunQueryDsl};

/// A database of its own on the test PostgreSQL server, dropped afterwards.
pub struct PostgresDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl PostgresDatabase {
    fn create(admin: &str) -> Self {
        let name = format!("otpgate_prod_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(admin).unwrap();
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Self {
            admin: admin.to_owned(),
            name,
            url,
        }
    }

    /// One when OTPGATE_TEST_POSTGRES_URL is set.
    pub fn from_env() -> Option<Self> {
        std::env::var("OTPGATE_TEST_POSTGRES_URL")
            .ok()
            .map(|admin| Self::create(&admin))
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin) {
            let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let _ = diesel::sql_query(drop).execute(&mut conn);
        }
    }
}
