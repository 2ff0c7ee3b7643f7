-- mod_bw_counter: example reports on the counter table.
-- Several lighttpd processes (or servers) may add to the same rows; every
-- row is a total, so plain SUMs are right.

-- Traffic per virtual host this month, in GiB, biggest first.
SELECT vhost,
       ROUND(SUM(`in`)  / POW(1024, 3), 3) AS gib_in,
       ROUND(SUM(`out`) / POW(1024, 3), 3) AS gib_out,
       ROUND(SUM(`in` + `out`) / POW(1024, 3), 3) AS gib_total
FROM bw_counter.bandwidth
WHERE day >= DATE_FORMAT(CURDATE(), '%Y-%m-01')
GROUP BY vhost
ORDER BY gib_total DESC;

-- One host, day by day, last 30 days.
SELECT day, `in`, `out`
FROM bw_counter.bandwidth
WHERE vhost = 'www.example.org' AND day >= CURDATE() - INTERVAL 30 DAY
ORDER BY day;

-- Whole server per day.
SELECT day, SUM(`in`) AS bytes_in, SUM(`out`) AS bytes_out, COUNT(*) AS vhosts
FROM bw_counter.bandwidth
GROUP BY day
ORDER BY day DESC
LIMIT 31;
