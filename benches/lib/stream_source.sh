# The data and queries that benches/stream_tables.sh measures and benches/refresh_profile.sh
# profiles, in one place so that the profile explains the benchmark's figures.
# Needs the PSQL array (psql through the proxy) set by the caller.

# A ROWS-row source (1,000 groups of ROWS/1,000 rows, an index on the group key) and two
# dimension tables for the join.
load_stream_source() {
    "${PSQL[@]}" <<SQL
CREATE TABLE src (id int PRIMARY KEY, grp int NOT NULL, d1 int NOT NULL, d2 int NOT NULL, val numeric NOT NULL);
INSERT INTO src SELECT g, g % 1000, g % 5000, g % 50, g % 997 FROM generate_series(1, $1) g;
CREATE INDEX ON src (grp);
CREATE TABLE dim1 (id int PRIMARY KEY, name text);
INSERT INTO dim1 SELECT g, 'd1-' || g FROM generate_series(0, 4999) g;
CREATE TABLE dim2 (id int PRIMARY KEY, region text);
INSERT INTO dim2 SELECT g, 'r' || (g % 7) FROM generate_series(0, 49) g;
ANALYZE;
SQL
}

# The measured queries, by kind.
AGG="SELECT grp, count(*) AS n, sum(val) AS total FROM src GROUP BY grp"
JOIN="SELECT s.id, s.val, d1.name, d2.region FROM src s JOIN dim1 d1 ON d1.id = s.d1 JOIN dim2 d2 ON d2.id = s.d2"
MINMAX="SELECT grp, min(val) AS lo, max(val) AS hi FROM src GROUP BY grp"
