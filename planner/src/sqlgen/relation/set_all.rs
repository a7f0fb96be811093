//! Versions of INTERSECT ALL / EXCEPT ALL: per distinct row, the multiplicity from the two
//! sides' weighted counts; the delta is new minus old multiplicity of the changed rows.

use super::*;

impl RelGen<'_> {
    /// INTERSECT ALL / EXCEPT ALL: per distinct row, the multiplicity from the two sides'
    /// counts (sums of weights); the delta is new minus old multiplicity for the rows whose
    /// hash appears in either side's delta (a colliding unchanged row contributes 0).
    pub(super) fn set_all(&self, x: &SetAllBody, version: Version, weight: &str) -> String {
        let n = x.names.len();
        let cols: Vec<String> = (0..n).map(|i| format!("__pgt_c{i}")).collect();
        let list = cols.join(", ");
        let mult = if x.intersect {
            "least(coalesce(pg_catalog.sum(__pgt_sw) FILTER (WHERE __pgt_side = 0), 0), \
             coalesce(pg_catalog.sum(__pgt_sw) FILTER (WHERE __pgt_side = 1), 0))"
        } else {
            "greatest(coalesce(pg_catalog.sum(__pgt_sw) FILTER (WHERE __pgt_side = 0), 0) - \
             coalesce(pg_catalog.sum(__pgt_sw) FILTER (WHERE __pgt_side = 1), 0), 0)"
        };
        let counts = |v: Version, restrict: &str| {
            format!(
                "SELECT {list}, {mult} AS __pgt_m FROM (SELECT __pgt_l.*, 0 AS __pgt_side FROM \
                 ({l}) AS __pgt_l({list}, __pgt_sw) UNION ALL SELECT __pgt_r.*, 1 FROM ({r}) \
                 AS __pgt_r({list}, __pgt_sw)) AS __pgt_both {restrict} GROUP BY {list}",
                l = self.body(&x.left, v, "__pgt_sw"),
                r = self.body(&x.right, v, "__pgt_sw"),
            )
        };
        let named: Vec<String> = cols
            .iter()
            .zip(&x.names)
            .map(|(c, nm)| format!("{c} AS {}", crate::api_call::quote_ident(nm)))
            .collect();
        let expand = |v: Version| {
            format!(
                "SELECT {}, 1 AS {weight} FROM ({}) AS __pgt_cnt CROSS JOIN LATERAL \
                 pg_catalog.generate_series(1::pg_catalog.int8, __pgt_cnt.__pgt_m::pg_catalog.int8)",
                named.join(", "),
                counts(v, "")
            )
        };
        match version {
            Version::New | Version::Old => expand(version),
            Version::Delta => {
                let hash = crate::sqlgen::row_hash(&cols);
                let restrict = format!(
                    "WHERE {hash} IN (SELECT {hash} FROM ({}) AS __pgt_dl({list}, __pgt_sw) \
                     UNION ALL SELECT {hash} FROM ({}) AS __pgt_dr({list}, __pgt_sw))",
                    self.body(&x.left, Version::Delta, "__pgt_sw"),
                    self.body(&x.right, Version::Delta, "__pgt_sw"),
                );
                format!(
                    "SELECT {}, pg_catalog.sum(__pgt_dm)::pg_catalog.int4 AS {weight} FROM (SELECT {list}, __pgt_m AS \
                     __pgt_dm FROM ({}) AS __pgt_cn UNION ALL SELECT {list}, -__pgt_m FROM ({}) \
                     AS __pgt_co) AS __pgt_dd GROUP BY {list} HAVING pg_catalog.sum(__pgt_dm) <> 0",
                    named.join(", "),
                    counts(Version::New, &restrict),
                    counts(Version::Old, &restrict),
                )
            }
        }
    }
}
