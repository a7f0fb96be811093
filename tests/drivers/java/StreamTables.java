// Drives pgtrickle-proxy's stream-table API with the PostgreSQL JDBC driver (tests/tests/drivers.rs).
//
// Usage: java -cp postgresql.jar:. StreamTables postgres://postgres@127.0.0.1:PORT/postgres
//
// pgjdbc sends every statement in the extended protocol: a PreparedStatement as the unnamed
// statement for its first executions and as a named server-side statement from the
// prepareThreshold-th (5) on; a Statement batch as Parse/Bind/Describe/Execute for each
// statement and one Sync; with autocommit off, a BEGIN in front of the first statement of a
// transaction, in the same batch. One connection uses preferQueryMode=simple (simple Query
// messages, parameters interpolated by the driver). Exits non-zero with a message on the first
// unexpected result.

import java.math.BigDecimal;
import java.net.URI;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

public class StreamTables {
    static final String QUERY =
        "SELECT customer, sum(amount) AS total, count(*) AS n FROM j_orders WHERE paid GROUP BY customer";
    static final String COLS = "customer, total, n";
    static final String CREATE =
        "SELECT pgtrickle.create_stream_table(name => ?, query => ?, schedule => ?, refresh_mode => ?)";
    static final String REFRESH = "SELECT pgtrickle.refresh_stream_table(?)";

    static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            throw new Failure(message);
        }
    }

    static void step(String message) {
        System.out.println("java: " + message);
        System.out.flush();
    }

    /** The rows of a query (no parameters), each as its columns joined by '|', sorted. */
    static List<String> rows(Connection c, String sql) throws SQLException {
        List<String> out = new ArrayList<>();
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            int n = rs.getMetaData().getColumnCount();
            while (rs.next()) {
                StringBuilder row = new StringBuilder();
                for (int i = 1; i <= n; i++) {
                    row.append(i > 1 ? "|" : "").append(rs.getString(i));
                }
                out.add(row.toString());
            }
        }
        Collections.sort(out);
        return out;
    }

    static List<String> checkEqual(Connection c, String st, String what) throws SQLException {
        List<String> got = rows(c, "SELECT " + COLS + " FROM " + st);
        List<String> want = rows(c, QUERY);
        check(got.equals(want), what + ": " + st + " holds " + got + ", its query returns " + want);
        return got;
    }

    /** The single value of a one-row query, bound with string parameters. */
    static String scalar(Connection c, String sql, String... params) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setString(i + 1, params[i]);
            }
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), sql + ": no row");
                String v = rs.getString(1);
                check(!rs.next(), sql + ": more than one row");
                return v;
            }
        }
    }

    /** Runs a prepared statement that must fail with `sqlstate`. */
    static void expectError(PreparedStatement ps, String sqlstate, String what) {
        try {
            ps.execute();
        } catch (SQLException e) {
            check(sqlstate.equals(e.getSQLState()),
                what + ": SQLSTATE " + e.getSQLState() + " (" + e.getMessage() + "), expected " + sqlstate);
            return;
        }
        throw new Failure(what + ": no error, expected SQLSTATE " + sqlstate);
    }

    static void callOnce(PreparedStatement ps, String column, String what) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            check(rs.getMetaData().getColumnCount() == 1
                    && column.equals(rs.getMetaData().getColumnLabel(1)),
                what + ": answered column " + rs.getMetaData().getColumnLabel(1));
            check(rs.next(), what + ": no row");
            check(!rs.next(), what + ": more than one row");
        }
    }

    static String status(Connection c, String name) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(
                "SELECT status, refresh_mode, schedule, is_populated FROM pgtrickle.pgt_status() WHERE name = ?")) {
            ps.setString(1, name);
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    return "";
                }
                String row = rs.getString(1) + "|" + rs.getString(2) + "|" + rs.getString(3) + "|"
                    + rs.getBoolean(4);
                check(!rs.next(), "pgt_status() lists " + name + " twice");
                return row;
            }
        }
    }

    /** postgres://USER@HOST:PORT/DB[?k=v] as a JDBC URL. */
    static String jdbcUrl(String url, String extra) throws Exception {
        URI u = new URI(url);
        StringBuilder s = new StringBuilder("jdbc:postgresql://")
            .append(u.getHost()).append(':').append(u.getPort()).append(u.getPath())
            .append("?user=").append(u.getUserInfo());
        if (u.getQuery() != null) {
            s.append('&').append(u.getQuery());
        }
        return s.append(extra).toString();
    }

    static void run(String url) throws Exception {
        try (Connection c = DriverManager.getConnection(jdbcUrl(url, ""))) {
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE j_orders (id int PRIMARY KEY, customer text, amount numeric, "
                    + "paid boolean NOT NULL)");
            }
            PreparedStatement insert = c.prepareStatement("INSERT INTO j_orders VALUES (?, ?, ?, ?)");
            for (int i = 1; i <= 60; i++) {
                insert.setInt(1, i);
                insert.setString(2, "c" + (i % 4));
                insert.setBigDecimal(3, new BigDecimal(i).divide(new BigDecimal(4)));
                insert.setBoolean(4, i % 3 != 0);
                check(insert.executeUpdate() == 1, "insert " + i);
            }
            step("source table created, 60 rows inserted with bound parameters");

            try (PreparedStatement create = c.prepareStatement(CREATE)) {
                create.setString(1, "j_totals");
                create.setString(2, QUERY);
                create.setString(3, "1h");
                create.setString(4, "DIFFERENTIAL");
                callOnce(create, "create_stream_table", "create_stream_table");
            }
            List<String> before = checkEqual(c, "j_totals", "after create");
            check(before.size() == 4, "j_totals has " + before.size() + " groups, expected 4");
            step("stream table created with bound parameters, equals its query");

            for (int i = 61; i <= 62; i++) {
                insert.setInt(1, i);
                insert.setString(2, i == 61 ? "c9" : null);
                insert.setBigDecimal(3, new BigDecimal("7.25"));
                insert.setBoolean(4, true);
                check(insert.executeUpdate() == 1, "insert " + i);
            }
            try (PreparedStatement update = c.prepareStatement(
                    "UPDATE j_orders SET paid = NOT paid WHERE id % ? = 0")) {
                update.setInt(1, 7);
                check(update.executeUpdate() == 8, "update");
            }
            try (PreparedStatement delete = c.prepareStatement("DELETE FROM j_orders WHERE id = ANY(?)")) {
                delete.setArray(1, c.createArrayOf("int4", new Integer[] {1, 2, 3, 30}));
                check(delete.executeUpdate() == 4, "delete");
            }
            check(rows(c, "SELECT " + COLS + " FROM j_totals").equals(before),
                "j_totals changed before its refresh (schedule 1h)");

            // More than prepareThreshold (5) executions: pgjdbc moves to a named statement.
            PreparedStatement refresh = c.prepareStatement(REFRESH);
            List<String> after = before;
            for (int i = 0; i < 8; i++) {
                if (i > 0) {
                    insert.setInt(1, 100 + i);
                    insert.setString(2, "c1");
                    insert.setBigDecimal(3, new BigDecimal(i));
                    insert.setBoolean(4, true);
                    check(insert.executeUpdate() == 1, "insert " + (100 + i));
                }
                refresh.setString(1, "j_totals");
                callOnce(refresh, "refresh_stream_table", "refresh " + (i + 1));
                after = checkEqual(c, "j_totals", "after refresh " + (i + 1));
            }
            check(!after.equals(before), "the refreshes changed nothing");
            check(refresh.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(),
                "pgjdbc did not switch the refresh to a named server-side statement");
            step("refreshed 8 times with a bound name (unnamed, then a named statement)");

            check(status(c, "public.j_totals").equals("ACTIVE|DIFFERENTIAL|1h|true"),
                "pgt_status() for public.j_totals: " + status(c, "public.j_totals"));
            step("pgt_status() lists it");

            try (PreparedStatement create = c.prepareStatement(CREATE)) {
                create.setString(1, "j_bad");
                create.setString(2, QUERY);
                create.setString(3, "soon");
                create.setString(4, "FULL");
                expectError(create, "22023", "create with schedule 'soon'");
            }
            refresh.setString(1, "j_missing");
            expectError(refresh, "42P01", "refresh of a missing stream table (named statement)");
            try (PreparedStatement fresh = c.prepareStatement(REFRESH)) {
                fresh.setString(1, "j_missing");
                expectError(fresh, "42P01", "refresh of a missing stream table (unnamed statement)");
            }
            check("t".equals(scalar(c, "SELECT to_regclass(?) IS NULL", "j_bad")),
                "the failed create left a table j_bad");
            check("42".equals(scalar(c, "SELECT ?::int + 1", "41")),
                "the session is not usable after the errors");
            step("errors: 22023 and 42P01, the session goes on");

            // setBoolean on API arguments: initialize => true, and cascade => false on its drop.
            try (PreparedStatement create = c.prepareStatement(
                    "SELECT pgtrickle.create_stream_table(name => ?, query => ?, schedule => ?, "
                        + "refresh_mode => ?, initialize => ?)")) {
                create.setString(1, "j_bool");
                create.setString(2, QUERY);
                create.setString(3, "1h");
                create.setString(4, "FULL");
                create.setBoolean(5, true);
                callOnce(create, "create_stream_table", "create with initialize => true");
            }
            check(status(c, "public.j_bool").equals("ACTIVE|FULL|1h|true"),
                "pgt_status() for public.j_bool: " + status(c, "public.j_bool"));
            checkEqual(c, "j_bool", "j_bool after its create");
            try (PreparedStatement drop = c.prepareStatement(
                    "SELECT pgtrickle.drop_stream_table(name => ?, cascade => ?)")) {
                drop.setString(1, "j_bool");
                drop.setBoolean(2, false);
                callOnce(drop, "drop_stream_table", "drop with cascade => false");
            }
            check(status(c, "public.j_bool").isEmpty(), "pgt_status() still lists the dropped j_bool");
            step("setBoolean: initialize => true, cascade => false");

            // A create inside a transaction (autocommit off: pgjdbc sends BEGIN in front of it),
            // rolled back: nothing is left.
            c.setAutoCommit(false);
            try (PreparedStatement create = c.prepareStatement(CREATE)) {
                create.setString(1, "j_tx");
                create.setString(2, QUERY);
                create.setString(3, "1h");
                create.setString(4, "FULL");
                callOnce(create, "create_stream_table", "create in a transaction");
            }
            check(rows(c, "SELECT " + COLS + " FROM j_tx").equals(after), "j_tx inside its transaction");
            c.rollback();
            c.setAutoCommit(true);
            check("t".equals(scalar(c, "SELECT to_regclass(?) IS NULL", "j_tx")),
                "the rolled-back create left a table j_tx");
            check(status(c, "public.j_tx").isEmpty(), "pgt_status() lists the rolled-back j_tx");
            step("create in a rolled-back transaction leaves nothing");

            // A failed call inside a transaction fails the transaction, as a server error would.
            c.setAutoCommit(false);
            refresh.setString(1, "j_missing");
            expectError(refresh, "42P01", "refresh of a missing stream table in a transaction");
            try (PreparedStatement after1 = c.prepareStatement("SELECT ?::int")) {
                after1.setInt(1, 1);
                expectError(after1, "25P02", "a statement in the failed block");
            }
            c.rollback();
            c.setAutoCommit(true);
            step("a failed call fails its transaction (25P02 after it)");

            // A Statement batch of API calls: pipelined, one Sync for all.
            try (Statement s = c.createStatement()) {
                s.addBatch("SELECT pgtrickle.create_stream_table(name => 'j_b1', query => $$" + QUERY
                    + "$$, schedule => '1h', refresh_mode => 'FULL')");
                s.addBatch("SELECT pgtrickle.create_stream_table(name => 'j_b2', query => $$" + QUERY
                    + "$$, schedule => '1h', refresh_mode => 'DIFFERENTIAL')");
                s.addBatch("SELECT pgtrickle.refresh_stream_table('j_b1')");
                int[] counts = s.executeBatch();
                check(counts.length == 3, "the batch answered " + counts.length + " counts");
            }
            checkEqual(c, "j_b1", "j_b1 after the batch");
            checkEqual(c, "j_b2", "j_b2 after the batch");
            try (Statement s = c.createStatement()) {
                s.addBatch("SELECT pgtrickle.drop_stream_table('j_b1')");
                s.addBatch("SELECT pgtrickle.drop_stream_table('j_b2')");
                s.executeBatch();
            }
            check("t".equals(scalar(c, "SELECT to_regclass(?) IS NULL AND to_regclass(?) IS NULL",
                "j_b1", "j_b2")), "the batch of drops left j_b1 or j_b2");
            step("a Statement batch of creates, a refresh, and drops");

            // Autocommit off for a whole life: every transaction's first statement is an API
            // call, so pgjdbc sends BEGIN (Parse/Bind/Execute, no Sync) in front of it in one
            // batch; each transaction is committed.
            c.setAutoCommit(false);
            try (PreparedStatement create = c.prepareStatement(CREATE)) {
                create.setString(1, "j_ac");
                create.setString(2, QUERY);
                create.setString(3, "1h");
                create.setString(4, "DIFFERENTIAL");
                callOnce(create, "create_stream_table", "create with autocommit off");
            }
            insert.setInt(1, 400);
            insert.setString(2, "c2");
            insert.setBigDecimal(3, new BigDecimal("5.5"));
            insert.setBoolean(4, true);
            check(insert.executeUpdate() == 1, "insert 400");
            refresh.setString(1, "j_ac");
            callOnce(refresh, "refresh_stream_table", "refresh in the creating transaction");
            checkEqual(c, "j_ac", "j_ac inside its creating transaction");
            c.commit();
            insert.setInt(1, 401);
            check(insert.executeUpdate() == 1, "insert 401");
            c.commit();
            for (int i = 0; i < 3; i++) {
                refresh.setString(1, "j_ac");
                callOnce(refresh, "refresh_stream_table", "refresh first in a transaction " + i);
                checkEqual(c, "j_ac", "j_ac after a refresh that began its transaction");
                c.commit();
            }
            try (PreparedStatement drop = c.prepareStatement("SELECT pgtrickle.drop_stream_table(?)")) {
                drop.setString(1, "j_ac");
                callOnce(drop, "drop_stream_table", "drop with autocommit off");
            }
            c.commit();
            c.setAutoCommit(true);
            check("t".equals(scalar(c, "SELECT to_regclass(?) IS NULL", "j_ac")),
                "the committed drop left j_ac");
            check(status(c, "public.j_ac").isEmpty(), "pgt_status() still lists j_ac");
            step("autocommit off: BEGIN batched with create, refresh, drop; each committed");

            // Simple protocol: preferQueryMode=simple sends Query messages.
            try (Connection simple = DriverManager.getConnection(jdbcUrl(url, "&preferQueryMode=simple"))) {
                try (Statement s = simple.createStatement()) {
                    s.execute("INSERT INTO j_orders VALUES (300, 'c3', 100, true)");
                    s.execute("SELECT pgtrickle.refresh_stream_table('j_totals')");
                }
                try (PreparedStatement ps = simple.prepareStatement(REFRESH)) {
                    ps.setString(1, "j_missing");
                    expectError(ps, "42P01", "simple-protocol refresh of a missing stream table");
                }
                checkEqual(simple, "j_totals", "after a simple-protocol refresh");
            }
            step("simple protocol (preferQueryMode=simple)");

            try (PreparedStatement drop = c.prepareStatement("SELECT pgtrickle.drop_stream_table(?)")) {
                drop.setString(1, "j_totals");
                callOnce(drop, "drop_stream_table", "drop j_totals");
            }
            check("t".equals(scalar(c, "SELECT to_regclass(?) IS NULL", "j_totals")),
                "drop_stream_table left the table");
            step("dropped");
            refresh.close();
            insert.close();
        }
    }

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: java StreamTables postgres://USER@HOST:PORT/DB");
            System.exit(2);
        }
        String driver = "java/pgjdbc " + org.postgresql.util.DriverInfo.DRIVER_VERSION;
        try {
            run(args[0]);
        } catch (Failure e) {
            System.err.println(driver + ": FAIL: " + e.getMessage());
            System.exit(1);
        } catch (Exception e) {
            System.err.println(driver + ": FAIL: unexpected exception:");
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("java: OK");
    }
}
