//! INTERSECT and EXCEPT (set semantics) as a semi- or anti-join of the left input with
//! the right, matching NULLs as equal.

use super::*;

impl Builder<'_> {
    /// `left INTERSECT right` as `left WHERE EXISTS (matching right row)`, `EXCEPT` with NOT
    /// EXISTS, matching NULLs as equal like set operations do; DISTINCT is applied on top.
    pub(super) fn intersect_except(
        &mut self,
        left: &SetExpr,
        right: &SetExpr,
        intersect: bool,
    ) -> R<Body> {
        let l = self.body(left)?;
        let r = self.body(right)?;
        let names = l.names();
        let n = names.len();
        if r.names().len() != n {
            return unsupported("INTERSECT/EXCEPT of inputs with different column counts");
        }
        let (lid, rid, pid) = (self.next_id, self.next_id + 1, self.next_id + 2);
        self.next_id += 3;
        let cols: Vec<String> = (0..n).map(|i| format!("__pgt_c{i}")).collect();
        let lf = Factor {
            id: lid,
            source: FactorSource::Derived(l),
            columns: cols.clone(),
        };
        let rf = Factor {
            id: rid,
            source: FactorSource::Derived(r),
            columns: cols.clone(),
        };
        let alias_list = |f: &Factor| format!("({}, {})", cols.join(", "), f.weight());
        let matches = cols
            .iter()
            .map(|c| format!("__pgt_r.{c} IS NOT DISTINCT FROM __pgt_l.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let pred_body = Block {
            items: vec!["1".into()],
            names: vec!["?column?".into()],
            item_exprs: vec!["1".into()],
            aliases: vec!["__pgt_r".into()],
            from_sql: format!("{} AS __pgt_r{}", rf.placeholder(), alias_list(&rf)),
            factors: vec![rf],
            where_sql: Some(matches),
            preds: vec![],
            variants: vec![],
        };
        let exprs: Vec<String> = cols.iter().map(|c| format!("__pgt_l.{c}")).collect();
        let items: Vec<String> = exprs
            .iter()
            .zip(&names)
            .map(|(e, n)| format!("{e} AS {}", quote_ident(n)))
            .collect();
        let from_sql = format!("{} AS __pgt_l{}", lf.placeholder(), alias_list(&lf));
        Ok(Body::Block(Box::new(Block {
            items,
            names,
            item_exprs: exprs,
            aliases: vec!["__pgt_l".into()],
            from_sql,
            factors: vec![lf],
            where_sql: None,
            preds: vec![Pred {
                negated: !intersect,
                body: Body::Block(Box::new(pred_body)),
                id: pid,
            }],
            variants: vec![],
        })))
    }
}
