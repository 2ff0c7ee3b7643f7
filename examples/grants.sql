-- mod_bw_counter: a MySQL user that can do exactly what the module needs
-- and nothing else: read, add and update rows of its table, and record (and
-- prune) flush ids in its ledger table.
-- 'localhost' is for bw_counter.mysql_server = "localhost" or a socket path,
-- '127.0.0.1' for "127.0.0.1:3306". For a database on another machine, use
-- the web server's address instead. Change the password (and put it in
-- bw_counter.mysql_password_file).
CREATE USER IF NOT EXISTS 'bw_counter'@'localhost' IDENTIFIED BY 'change-me';
CREATE USER IF NOT EXISTS 'bw_counter'@'127.0.0.1' IDENTIFIED BY 'change-me';
GRANT SELECT, INSERT, UPDATE ON bw_counter.bandwidth TO 'bw_counter'@'localhost';
GRANT SELECT, INSERT, UPDATE ON bw_counter.bandwidth TO 'bw_counter'@'127.0.0.1';
GRANT SELECT, INSERT, DELETE ON bw_counter.bandwidth_batches TO 'bw_counter'@'localhost';
GRANT SELECT, INSERT, DELETE ON bw_counter.bandwidth_batches TO 'bw_counter'@'127.0.0.1';
