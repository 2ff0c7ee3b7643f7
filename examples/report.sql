-- mod_bw_counter: example reports on the counter table.
--   mariadb bw_counter < examples/report.sql       (or paste one query)
-- Several lighttpd processes (or servers) may add to the same rows; every
-- row is a total, so plain SUMs are right. `in` and `out` are bytes.

-- Traffic per virtual host this month, biggest first: exact bytes, and the
-- total in the unit that suits it (B, KiB, MiB, GiB, TiB).
SELECT vhost,
       SUM(`in`) AS bytes_in,
       SUM(`out`) AS bytes_out,
       CASE
         WHEN SUM(`in` + `out`) < 1024 THEN CONCAT(SUM(`in` + `out`), ' B')
         ELSE CONCAT(
           ROUND(SUM(`in` + `out`) / POW(1024, LEAST(4, FLOOR(LOG(1024, SUM(`in` + `out`))))), 2),
           ' ',
           ELT(LEAST(4, FLOOR(LOG(1024, SUM(`in` + `out`)))), 'KiB', 'MiB', 'GiB', 'TiB'))
       END AS total
FROM bw_counter.bandwidth
WHERE day >= DATE_FORMAT(CURDATE(), '%Y-%m-01')
GROUP BY vhost
ORDER BY SUM(`in` + `out`) DESC;

-- The busiest host of the last 30 days, day by day (replace the subquery
-- with a name, e.g. vhost = 'www.example.org', for another host).
SELECT day, vhost, `in`, `out`
FROM bw_counter.bandwidth
WHERE vhost = (SELECT vhost FROM bw_counter.bandwidth
               WHERE day >= CURDATE() - INTERVAL 30 DAY
               GROUP BY vhost ORDER BY SUM(`in` + `out`) DESC LIMIT 1)
  AND day >= CURDATE() - INTERVAL 30 DAY
ORDER BY day;

-- Whole server per day.
SELECT day, SUM(`in`) AS bytes_in, SUM(`out`) AS bytes_out, COUNT(*) AS vhosts
FROM bw_counter.bandwidth
GROUP BY day
ORDER BY day DESC
LIMIT 31;
