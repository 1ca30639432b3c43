// pgJDBC against infrasql, as a Java application would use it.
//
//   java -cp <classes>:/usr/share/java/postgresql.jar ClientTest tx <prepareThreshold> <name prefix>
//   java -cp <classes>:/usr/share/java/postgresql.jar ClientTest remarks
//   java -cp <classes>:/usr/share/java/postgresql.jar ClientTest keys <name>
//
// Connection settings come from JDBC_URL, PGUSER and PGPASSWORD. Each step
// prints one line on stdout; the first failure prints the step, SQLSTATE and
// message on stderr and exits with status 1.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.util.Properties;

public class ClientTest {
    interface Step<T> {
        T run() throws SQLException;
    }

    static <T> T step(String what, Step<T> s) {
        try {
            return s.run();
        } catch (SQLException e) {
            System.out.flush();
            System.err.println("FAILED at " + what + ": SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            System.exit(1);
            return null;
        }
    }

    static Connection connect(String prepareThreshold) {
        Properties p = new Properties();
        p.setProperty("user", System.getenv("PGUSER"));
        p.setProperty("password", System.getenv("PGPASSWORD"));
        p.setProperty("prepareThreshold", prepareThreshold);
        p.setProperty("connectTimeout", "10");
        p.setProperty("socketTimeout", "120");
        return step("connect", () -> DriverManager.getConnection(System.getenv("JDBC_URL"), p));
    }

    static void insertVpc(Connection c, String name) {
        step("INSERT " + name, () -> {
            try (PreparedStatement ps = c.prepareStatement(
                    "INSERT INTO aws.vpc (name, cidr_block) VALUES (?, '10.1.0.0/16')")) {
                ps.setString(1, name);
                return ps.executeUpdate();
            }
        });
    }

    /** The row's vpc_id, or "absent". */
    static String vpcId(Connection c, String name) {
        return step("SELECT " + name, () -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT vpc_id FROM aws.vpc WHERE name = ?")) {
                ps.setString(1, name);
                try (ResultSet rs = ps.executeQuery()) {
                    return rs.next() ? rs.getString(1) : "absent";
                }
            }
        });
    }

    /** Autocommit off: commit, rollback, and a savepoint rolled back before commit. */
    static void tx(String threshold, String prefix) {
        try (Connection c = connect(threshold)) {
            step("setAutoCommit(false)", () -> { c.setAutoCommit(false); return null; });

            String name = prefix + "-commit";
            insertVpc(c, name);
            step("commit() after INSERT " + name, () -> { c.commit(); return null; });
            String id = vpcId(c, name);
            step("commit() of a read-only transaction", () -> { c.commit(); return null; });
            System.out.println("commit " + name + " " + id);

            name = prefix + "-rollback";
            insertVpc(c, name);
            step("rollback() after INSERT " + name, () -> { c.rollback(); return null; });
            id = vpcId(c, name);
            step("commit() of a read-only transaction", () -> { c.commit(); return null; });
            System.out.println("rollback " + name + " " + id);

            String a = prefix + "-sp-a", b = prefix + "-sp-b";
            insertVpc(c, a);
            Savepoint sp = step("setSavepoint()", c::setSavepoint);
            insertVpc(c, b);
            step("rollback(savepoint)", () -> { c.rollback(sp); return null; });
            step("commit() after a savepoint rollback", () -> { c.commit(); return null; });
            String idA = vpcId(c, a), idB = vpcId(c, b);
            step("commit() of a read-only transaction", () -> { c.commit(); return null; });
            System.out.println("savepoint " + a + " " + idA + " " + b + " " + idB);
        } catch (SQLException e) {
            System.err.println("FAILED at close: SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            System.exit(1);
        }
    }

    /** What a BI tool shows as descriptions: REMARKS of aws.vpc and its columns. */
    static void remarks() {
        try (Connection c = connect("5")) {
            DatabaseMetaData md = step("getMetaData()", c::getMetaData);
            step("getTables(null, \"aws\", \"vpc\", null)", () -> {
                try (ResultSet rs = md.getTables(null, "aws", "vpc", null)) {
                    while (rs.next()) {
                        System.out.println("table " + rs.getString("TABLE_NAME") + "\t" + rs.getString("REMARKS"));
                    }
                }
                return null;
            });
            step("getColumns(null, \"aws\", \"vpc\", \"%\")", () -> {
                try (ResultSet rs = md.getColumns(null, "aws", "vpc", "%")) {
                    while (rs.next()) {
                        System.out.println("column " + rs.getString("COLUMN_NAME") + "\t" + rs.getString("REMARKS"));
                    }
                }
                return null;
            });
        } catch (SQLException e) {
            System.err.println("FAILED at close: SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            System.exit(1);
        }
    }

    /**
     * Generated keys, as Hibernate and Spring's KeyHolder use them: the key
     * returned at INSERT still finds the row after commit(), which then
     * carries AWS's id.
     */
    static void keys(String name) {
        try (Connection c = connect("5")) {
            step("setAutoCommit(false)", () -> { c.setAutoCommit(false); return null; });
            long[] key = new long[1];
            String pending = step("INSERT with RETURN_GENERATED_KEYS", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                        "INSERT INTO aws.vpc (name, cidr_block) VALUES (?, '10.3.0.0/16')",
                        Statement.RETURN_GENERATED_KEYS)) {
                    ps.setString(1, name);
                    ps.executeUpdate();
                    try (ResultSet rs = ps.getGeneratedKeys()) {
                        if (!rs.next()) {
                            throw new SQLException("no generated keys", "02000");
                        }
                        key[0] = rs.getLong("id");
                        return rs.getString("vpc_id");
                    }
                }
            });
            step("commit()", () -> { c.commit(); return null; });
            String real = step("SELECT by the generated id", () -> {
                try (PreparedStatement ps = c.prepareStatement("SELECT vpc_id FROM aws.vpc WHERE id = ?")) {
                    ps.setLong(1, key[0]);
                    try (ResultSet rs = ps.executeQuery()) {
                        return rs.next() ? rs.getString(1) : "absent";
                    }
                }
            });
            step("commit() of a read-only transaction", () -> { c.commit(); return null; });
            System.out.println("keys " + key[0] + " " + pending + " " + real);
        } catch (SQLException e) {
            System.err.println("FAILED at close: SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            System.exit(1);
        }
    }

    public static void main(String[] args) {
        switch (args[0]) {
            case "tx" -> tx(args[1], args[2]);
            case "remarks" -> remarks();
            case "keys" -> keys(args[1]);
            default -> throw new IllegalArgumentException(args[0]);
        }
    }
}
