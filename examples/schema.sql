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
