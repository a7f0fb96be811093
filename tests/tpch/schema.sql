-- TPC-H schema (spec 1.4) for pgtrickle-proxy's TPC-H test and benchmark: the eight tables
-- with their primary keys and the spec's types (identifier columns as integers, decimals as
-- numeric(15,2), fixed text as char(n)). No foreign keys: RF2 and the test's updates delete
-- rows in the spec's order (lineitem before orders), and the data keeps referential integrity
-- by construction. Plus three deterministic pseudo-random helpers used by generate.sql,
-- orders.sql and the refresh functions: every value is a hash of a key and a salt, so the data
-- does not depend on scan order or on the session.

CREATE TABLE region (
    r_regionkey integer PRIMARY KEY,
    r_name char(25) NOT NULL,
    r_comment varchar(152)
);

CREATE TABLE nation (
    n_nationkey integer PRIMARY KEY,
    n_name char(25) NOT NULL,
    n_regionkey integer NOT NULL,
    n_comment varchar(152)
);

CREATE TABLE supplier (
    s_suppkey integer PRIMARY KEY,
    s_name char(25) NOT NULL,
    s_address varchar(40) NOT NULL,
    s_nationkey integer NOT NULL,
    s_phone char(15) NOT NULL,
    s_acctbal numeric(15,2) NOT NULL,
    s_comment varchar(101) NOT NULL
);

CREATE TABLE customer (
    c_custkey integer PRIMARY KEY,
    c_name varchar(25) NOT NULL,
    c_address varchar(40) NOT NULL,
    c_nationkey integer NOT NULL,
    c_phone char(15) NOT NULL,
    c_acctbal numeric(15,2) NOT NULL,
    c_mktsegment char(10) NOT NULL,
    c_comment varchar(117) NOT NULL
);

CREATE TABLE part (
    p_partkey integer PRIMARY KEY,
    p_name varchar(55) NOT NULL,
    p_mfgr char(25) NOT NULL,
    p_brand char(10) NOT NULL,
    p_type varchar(25) NOT NULL,
    p_size integer NOT NULL,
    p_container char(10) NOT NULL,
    p_retailprice numeric(15,2) NOT NULL,
    p_comment varchar(23) NOT NULL
);

CREATE TABLE partsupp (
    ps_partkey integer NOT NULL,
    ps_suppkey integer NOT NULL,
    ps_availqty integer NOT NULL,
    ps_supplycost numeric(15,2) NOT NULL,
    ps_comment varchar(199) NOT NULL,
    PRIMARY KEY (ps_partkey, ps_suppkey)
);

CREATE TABLE orders (
    o_orderkey bigint PRIMARY KEY,
    o_custkey integer NOT NULL,
    o_orderstatus char(1) NOT NULL,
    o_totalprice numeric(15,2) NOT NULL,
    o_orderdate date NOT NULL,
    o_orderpriority char(15) NOT NULL,
    o_clerk char(15) NOT NULL,
    o_shippriority integer NOT NULL,
    o_comment varchar(79) NOT NULL
);
CREATE INDEX orders_custkey ON orders (o_custkey);

CREATE TABLE lineitem (
    l_orderkey bigint NOT NULL,
    l_partkey integer NOT NULL,
    l_suppkey integer NOT NULL,
    l_linenumber integer NOT NULL,
    l_quantity numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL,
    l_discount numeric(15,2) NOT NULL,
    l_tax numeric(15,2) NOT NULL,
    l_returnflag char(1) NOT NULL,
    l_linestatus char(1) NOT NULL,
    l_shipdate date NOT NULL,
    l_commitdate date NOT NULL,
    l_receiptdate date NOT NULL,
    l_shipinstruct char(25) NOT NULL,
    l_shipmode char(10) NOT NULL,
    l_comment varchar(44) NOT NULL,
    PRIMARY KEY (l_orderkey, l_linenumber)
);
CREATE INDEX lineitem_part_supp ON lineitem (l_partkey, l_suppkey);
CREATE INDEX lineitem_suppkey ON lineitem (l_suppkey);

-- A uniform value in [0, 1) from key k and salt s.
CREATE FUNCTION tpch_rand(k bigint, s bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (hashint8extended(k, s) & 9007199254740991)::double precision / 9007199254740992;

-- A uniform integer in [lo, hi] from key k and salt s.
CREATE FUNCTION tpch_int(k bigint, s bigint, lo bigint, hi bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (lo + floor(tpch_rand(k, s) * (hi - lo + 1)))::integer;

-- Text of `len` characters from key k and salt s: a window of a fixed pseudo-random text
-- over the spec's grammar vocabulary (one hash per value, so that the function is inlined;
-- bytea, whose substr does not walk characters; some windows contain 'special ... requests',
-- for q13).
CREATE FUNCTION tpch_text(k bigint, s bigint, len integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN encode(substr(
        'pending beans dugouts courts around accounts theodolites packages instructions slyly '
        'dolphins about foxes above frays wake wake regular packages requests ideas sleep '
        'packages haggle asymptotes asymptotes around ironic bold beneath dolphins dolphins '
        'theodolites bold furiously courts slyly regular pinto platelets quickly final '
        'theodolites deposits nag wake excuses about pinto pending courts frays regular excuses '
        'excuses asymptotes asymptotes haggle even pending along among frays special theodolites '
        'about beans deposits along instructions among packages pending regular final theodolites '
        'theodolites regular quickly bold cajole regular frays around excuses final use after '
        'frays bold beside nag above foxes along above use cajole pinto pending packages after '
        'wake accounts about beans along slyly dependencies ironic along theodolites dependencies '
        'about quickly wake use quickly sleep dependencies haggle after packages sleep foxes '
        'around special carefully asymptotes beneath after packages pending nag pending carefully '
        'special foxes quickly furiously excuses among instructions around sleep packages regular '
        'carefully ironic special furiously requests packages among packages even accounts '
        'deposits pinto frays platelets instructions haggle carefully beneath pinto bold among '
        'courts special haggle along nag accounts nag beside beneath ideas along beans carefully '
        'accounts courts use after platelets final packages pending express special blithely '
        'dugouts ironic deposits packages along about express beside nag blithely pending '
        'packages haggle beside use cajole express about requests final ironic even ironic '
        'quickly dolphins requests courts dolphins sleep pinto dolphins beneath carefully '
        'dependencies'::bytea, tpch_int(k, s, 1, 1500), len), 'escape');
