//! The module's database link to a rig server, as the benchmarks use it:
//! the least-privilege user of examples/grants.sql, the example table and
//! its ledger.

use mod_bw_counter::config::{self, DbConfig, Password, Tls};
use mod_bw_counter::flush::Link;

use crate::common::mariadb::{DATABASE, PASSWORD, TABLE, USER};

/// A Link to `address` (`host:port`), as the module would make it.
pub fn link(address: &str) -> Link {
    Link::new(DbConfig {
        servers: vec![config::parse_server(address).expect("a rig address")],
        database: DATABASE.into(),
        table: config::parse_table(TABLE).unwrap(),
        ledger: config::parse_table(&format!("{TABLE}_batches")).unwrap(),
        user: USER.into(),
        password: Password::Inline(PASSWORD.into()),
        tls: Tls::default(),
    })
}
