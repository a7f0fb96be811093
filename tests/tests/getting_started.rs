//! pg_trickle's getting-started tutorial (docs/GETTING_STARTED.md of trickle-labs/pg-trickle,
//! chapters 1 and 2) run verbatim through the proxy: the products summary, the recursive
//! department tree, the statistics and report stream tables chained on it, and the inserts,
//! rename and delete that cascade through the chain. After each step every stream table must
//! equal its defining query, and show the tutorial's expected rows.

use pgtrickle_e2e::{connect, contents, rows_differing, setup};
use tokio_postgres::Client;

const TREE: &str = "
    WITH RECURSIVE tree AS (
        -- Base case: root departments (no parent)
        SELECT id, name, parent_id, name AS path, 0 AS depth
        FROM departments
        WHERE parent_id IS NULL

        UNION ALL

        -- Recursive step: children join back to the tree
        SELECT d.id, d.name, d.parent_id,
               tree.path || ' > ' || d.name AS path,
               tree.depth + 1
        FROM departments d
        JOIN tree ON d.parent_id = tree.id
    )
    SELECT id, name, parent_id, path, depth FROM tree
    ";

const STATS: &str = "
    SELECT
        t.id          AS department_id,
        t.name        AS department_name,
        t.path        AS full_path,
        t.depth,
        COUNT(e.id)                    AS headcount,
        COALESCE(SUM(e.salary), 0)     AS total_salary,
        COALESCE(AVG(e.salary), 0)     AS avg_salary
    FROM department_tree t
    LEFT JOIN employees e ON e.department_id = t.id
    GROUP BY t.id, t.name, t.path, t.depth
    ";

const REPORT: &str = "
    SELECT
        split_part(full_path, ' > ', 2) AS division,
        SUM(headcount)                  AS total_headcount,
        SUM(total_salary)               AS total_payroll
    FROM department_stats
    WHERE depth >= 1
    GROUP BY 1
    ";

const SUMMARY: &str = "
        SELECT
            category,
            COUNT(*)                    AS product_count,
            ROUND(AVG(price), 2)        AS avg_price,
            MIN(price)                  AS min_price,
            MAX(price)                  AS max_price,
            COUNT(*) FILTER (WHERE in_stock) AS in_stock_count
        FROM products
        GROUP BY category
    ";

async fn check(client: &Client, st: &str, cols: &str, query: &str, step: &str) {
    assert_eq!(
        rows_differing(client, st, cols, query).await,
        0,
        "{st} after {step}: {}",
        contents(client, &format!("SELECT {cols} FROM {st}")).await
    );
}

async fn check_chain(client: &Client, step: &str) {
    check(
        client,
        "department_tree",
        "id, name, parent_id, path, depth",
        TREE,
        step,
    )
    .await;
    check(
        client,
        "department_stats",
        "department_id, department_name, full_path, depth, headcount, total_salary, avg_salary",
        STATS,
        step,
    )
    .await;
    check(
        client,
        "department_report",
        "division, total_headcount, total_payroll",
        REPORT,
        step,
    )
    .await;
}

async fn refresh_chain(client: &Client) {
    client
        .batch_execute(
            "SELECT pgtrickle.refresh_stream_table('department_tree');
             SELECT pgtrickle.refresh_stream_table('department_stats');
             SELECT pgtrickle.refresh_stream_table('department_report');",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_getting_started_tutorial_runs_verbatim() {
    let (_cluster, proxy) = setup!(&[]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;

    // Chapter 1.
    client
        .batch_execute(
            "CREATE TABLE products (
                id       SERIAL PRIMARY KEY,
                category TEXT           NOT NULL,
                price    NUMERIC(10,2)  NOT NULL,
                in_stock BOOLEAN        NOT NULL DEFAULT true
            );
            INSERT INTO products (category, price) VALUES
                ('Electronics', 299.99),
                ('Electronics', 49.99),
                ('Books',       14.99),
                ('Books',       24.99),
                ('Books',        9.99);",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table(
                name     => 'category_summary',
                query    => $${SUMMARY}$$,
                schedule => '1s'
            );"
        ))
        .await
        .unwrap();
    let cols = "category, product_count, avg_price, min_price, max_price, in_stock_count";
    assert_eq!(
        contents(&client, &format!("SELECT {cols} FROM category_summary")).await,
        "(Books,3,16.66,9.99,24.99,3);(Electronics,2,174.99,49.99,299.99,2)"
    );
    client
        .batch_execute("INSERT INTO products (category, price) VALUES ('Books', 39.99);")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('category_summary')")
        .await
        .unwrap();
    client
        .batch_execute("UPDATE products SET price = 19.99 WHERE price = 299.99;")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('category_summary')")
        .await
        .unwrap();
    assert_eq!(
        contents(&client, &format!("SELECT {cols} FROM category_summary")).await,
        "(Books,4,22.49,9.99,39.99,4);(Electronics,2,34.99,19.99,49.99,2)"
    );
    client
        .batch_execute(
            "SELECT pgtrickle.drop_stream_table('category_summary'); DROP TABLE products;",
        )
        .await
        .unwrap();

    // Chapter 2.
    client
        .batch_execute(
            "CREATE TABLE departments (
                id         SERIAL PRIMARY KEY,
                name       TEXT NOT NULL,
                parent_id  INT REFERENCES departments(id)
            );
            CREATE TABLE employees (
                id            SERIAL PRIMARY KEY,
                name          TEXT NOT NULL,
                department_id INT NOT NULL REFERENCES departments(id),
                salary        NUMERIC(10,2) NOT NULL
            );
            INSERT INTO departments (id, name, parent_id) VALUES
                (1, 'Company',     NULL);
            INSERT INTO departments (id, name, parent_id) VALUES
                (2, 'Engineering', 1),
                (3, 'Sales',       1),
                (4, 'Operations',  1);
            INSERT INTO departments (id, name, parent_id) VALUES
                (5, 'Backend',     2),
                (6, 'Frontend',    2),
                (7, 'Platform',    2);
            INSERT INTO employees (name, department_id, salary) VALUES
                ('Alice',   5, 120000),   -- Backend
                ('Bob',     5, 115000),   -- Backend
                ('Charlie', 6, 110000),   -- Frontend
                ('Diana',   7, 130000),   -- Platform
                ('Eve',     3, 95000),    -- Sales
                ('Frank',   3, 90000),    -- Sales
                ('Grace',   4, 100000);   -- Operations",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table(
                name         => 'department_tree',
                query        => $${TREE}$$,
                schedule     => '1s'
            );"
        ))
        .await
        .unwrap();
    assert_eq!(
        contents(
            &client,
            "SELECT id, name, parent_id, path, depth FROM department_tree"
        )
        .await,
        "(1,Company,,Company,0);(2,Engineering,1,\"Company > Engineering\",1);\
         (3,Sales,1,\"Company > Sales\",1);(4,Operations,1,\"Company > Operations\",1);\
         (5,Backend,2,\"Company > Engineering > Backend\",2);\
         (6,Frontend,2,\"Company > Engineering > Frontend\",2);\
         (7,Platform,2,\"Company > Engineering > Platform\",2)"
    );
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table(
                name         => 'department_stats',
                query        => $${STATS}$$,
                schedule     => 'calculated'      -- CALCULATED: inherit schedule from downstream; see explanation below
            );"
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table(
                name         => 'department_report',
                query        => $${REPORT}$$,
                schedule     => '1s'              -- this is the only explicit schedule; CALCULATED tables above inherit it
            );"
        ))
        .await
        .unwrap();
    assert_eq!(
        contents(
            &client,
            "SELECT division, total_headcount, total_payroll FROM department_report"
        )
        .await,
        "(Engineering,4,475000.00);(Operations,1,100000.00);(Sales,2,185000.00)"
    );
    check_chain(&client, "creation").await;

    // 2.4a: an insert ripples through the chain.
    client
        .batch_execute(
            "INSERT INTO employees (name, department_id, salary) VALUES
                ('Heidi', 6, 105000);  -- New Frontend engineer",
        )
        .await
        .unwrap();
    refresh_chain(&client).await;
    check_chain(&client, "2.4a").await;
    assert_eq!(
        contents(
            &client,
            "SELECT department_name, headcount, total_salary FROM department_stats \
             WHERE department_name = 'Frontend'"
        )
        .await,
        "(Frontend,2,215000.00)"
    );

    // 2.4b: a new department cascades through the recursive tree.
    client
        .batch_execute(
            "INSERT INTO departments (id, name, parent_id) VALUES
                (8, 'DevOps', 2);  -- New team under Engineering",
        )
        .await
        .unwrap();
    refresh_chain(&client).await;
    check_chain(&client, "2.4b").await;
    assert_eq!(
        contents(
            &client,
            "SELECT id, name, depth, path FROM department_tree WHERE name = 'DevOps'"
        )
        .await,
        "(8,DevOps,2,\"Company > Engineering > DevOps\")"
    );

    // 2.4c: a rename rewrites every path below it.
    client
        .batch_execute("UPDATE departments SET name = 'R&D' WHERE id = 2;")
        .await
        .unwrap();
    refresh_chain(&client).await;
    check_chain(&client, "2.4c").await;
    assert_eq!(
        contents(
            &client,
            "SELECT name, path FROM department_tree WHERE path LIKE '%R&D%'"
        )
        .await,
        "(Backend,\"Company > R&D > Backend\");(DevOps,\"Company > R&D > DevOps\");\
         (Frontend,\"Company > R&D > Frontend\");(Platform,\"Company > R&D > Platform\");\
         (R&D,\"Company > R&D\")"
    );

    // 2.4d: a deleted employee.
    client
        .batch_execute("DELETE FROM employees WHERE name = 'Bob';")
        .await
        .unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.refresh_stream_table('department_stats');
             SELECT pgtrickle.refresh_stream_table('department_report');",
        )
        .await
        .unwrap();
    check_chain(&client, "2.4d").await;

    // The scheduler alone (1s schedules) also carries a change through the chain.
    client
        .batch_execute(
            "INSERT INTO departments (id, name, parent_id) VALUES (9, 'Support', 4);
             INSERT INTO employees (name, department_id, salary) VALUES ('Ivan', 9, 80000);",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM department_report WHERE division = 'Operations' \
                 AND total_headcount = 2",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the scheduler did not carry the change through the chain: {}",
            contents(&client, "SELECT * FROM department_report").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    check_chain(&client, "scheduled refreshes").await;
}
