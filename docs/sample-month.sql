-- Example rows for docs/chart.png: ten vhosts over November 2026 in a
-- database of their own (bw_counter_sample), so they never mix with real
-- counts. Deterministic (CRC32 of vhost and day, no RAND()): loading it
-- twice gives the same rows, and the same picture.
--
-- README, Reports, has the commands that load it and draw the chart.
CREATE DATABASE IF NOT EXISTS bw_counter_sample;
CREATE TABLE IF NOT EXISTS bw_counter_sample.bandwidth (
  `vhost` varchar(255) NOT NULL,
  `day` date NOT NULL,
  `in` bigint(64) NOT NULL,
  `out` bigint(64) NOT NULL,
  PRIMARY KEY (`vhost`, `day`)
) ENGINE=InnoDB;

INSERT INTO bw_counter_sample.bandwidth (vhost, day, `in`, `out`)
WITH RECURSIVE days (day) AS (
  SELECT DATE '2026-11-01' UNION ALL
  SELECT day + INTERVAL 1 DAY FROM days WHERE day < DATE '2026-11-30'
), sites (vhost, gib_per_day) AS (
  SELECT 'static.example.net', 12.0 UNION ALL
  SELECT 'www.example.org', 7.5 UNION ALL
  SELECT 'shop.example.com', 3.0 UNION ALL
  SELECT 'api.example.com', 1.4 UNION ALL
  SELECT 'blog.example.org', 0.35 UNION ALL
  SELECT 'docs.example.org', 0.3 UNION ALL
  SELECT 'mail.example.com', 0.2 UNION ALL
  SELECT 'status.example.net', 0.15 UNION ALL
  SELECT 'old.example.com', 0.05 UNION ALL
  SELECT 'test.example.net', 0.02
), daily AS (
  SELECT s.vhost, d.day,
         -- 60 % to 140 % of the site's usual day, and a few busy days.
         s.gib_per_day * 1073741824
           * (0.6 + (CRC32(CONCAT(s.vhost, d.day)) % 800) / 1000)
           * IF(CRC32(CONCAT(d.day, s.vhost)) % 13 = 0, 1.8, 1) AS bytes
  FROM sites s CROSS JOIN days d
)
SELECT vhost, day, ROUND(bytes / 25), ROUND(bytes) FROM daily;
