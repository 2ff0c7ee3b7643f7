-- mod_bw_counter: the database and table the module adds its counts to.
-- The table is the original mod_bw_counter's, unchanged: one row per
-- virtual host and day, bytes received (`in`) and sent (`out`).
-- InnoDB (the default engine) is required: each flush is one transaction.
CREATE DATABASE IF NOT EXISTS bw_counter;

CREATE TABLE IF NOT EXISTS bw_counter.bandwidth (
  `vhost` varchar(255) NOT NULL,
  `day` date NOT NULL,
  `in` bigint(64) NOT NULL,
  `out` bigint(64) NOT NULL,
  PRIMARY KEY (`vhost`, `day`)
) ENGINE=InnoDB;

-- The ledger: one row per committed flush, written in the same transaction
-- as the counts. A flush retried after a lost COMMIT reply finds its id here
-- and is not added twice (exactly-once delivery). The module deletes rows
-- older than 7 days. Name: bw_counter.mysql_ledger_table, by default the
-- table's name plus "_batches".
CREATE TABLE IF NOT EXISTS bw_counter.bandwidth_batches (
  `batch` varchar(128) NOT NULL,
  `at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`batch`),
  KEY (`at`)
) ENGINE=InnoDB;
