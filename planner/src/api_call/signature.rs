//! The pgtrickle functions this proxy answers: their names, parameters, types and defaults, as
//! pg_trickle declares them.

/// The SQL type of an API parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `text`
    Text,
    /// `boolean`
    Bool,
    /// `integer` (also `bigint` parameters: values are 64-bit)
    Int,
    /// `double precision` (float8): integer and numeric literals are accepted, as PostgreSQL
    /// casts them implicitly
    Float,
}

impl ParamType {
    /// The PostgreSQL type name, for messages.
    pub fn sql_name(self) -> &'static str {
        match self {
            ParamType::Text => "text",
            ParamType::Bool => "boolean",
            ParamType::Int => "integer",
            ParamType::Float => "double precision",
        }
    }
}

/// A parameter's default: absent means the argument is required.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// No default: the argument must be given.
    Required,
    /// `DEFAULT NULL`
    Null,
    /// A text default.
    Text(&'static str),
    /// A boolean default.
    Bool(bool),
    /// An integer default.
    Int(i64),
    /// A double precision default.
    Float(f64),
}

/// One declared parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name, for named notation.
    pub name: &'static str,
    /// Its type.
    pub ty: ParamType,
    /// Its default.
    pub default: Default,
}

/// The functions of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFunction {
    /// `create_stream_table`
    CreateStreamTable,
    /// `create_stream_table_if_not_exists`
    CreateStreamTableIfNotExists,
    /// `create_or_replace_stream_table`
    CreateOrReplaceStreamTable,
    /// `alter_stream_table`
    AlterStreamTable,
    /// `drop_stream_table`
    DropStreamTable,
    /// `refresh_stream_table`
    RefreshStreamTable,
    /// `resume_stream_table`
    ResumeStreamTable,
    /// `pgt_status`
    PgtStatus,
    /// `explain_st`
    ExplainSt,
    /// `get_refresh_history`
    GetRefreshHistory,
    /// `create_stream_table_fast_append_only`
    CreateFastAppendOnly,
    /// `create_stream_table_realtime`
    CreateRealtime,
    /// `create_stream_table_batch`
    CreateBatch,
    /// `create_stream_table_cost_optimized`
    CreateCostOptimized,
    /// `pause_stream_table`
    PauseStreamTable,
    /// `set_stream_table_refresh_policy`
    SetRefreshPolicy,
}

const fn p(name: &'static str, ty: ParamType, default: Default) -> Param {
    Param { name, ty, default }
}

use self::Default::{Bool as DB, Int as DI, Null, Required, Text as DT};
use ParamType::{Bool, Float, Int, Text};

/// pg_trickle's `create_stream_table` parameters, in its order.
const CREATE: &[Param] = &[
    p("name", Text, Required),
    p("query", Text, Required),
    p("schedule", Text, DT("calculated")),
    p("refresh_mode", Text, DT("AUTO")),
    p("initialize", Bool, DB(true)),
    p("diamond_consistency", Text, Null),
    p("diamond_schedule_policy", Text, Null),
    p("cdc_mode", Text, Null),
    p("append_only", Bool, DB(false)),
    p("pooler_compatibility_mode", Bool, DB(false)),
    p("partition_by", Text, Null),
    p("max_differential_joins", Int, Null),
    p("max_delta_fraction", Float, Null),
    p("output_distribution_column", Text, Null),
    p("temporal", Bool, DB(false)),
    p("storage_backend", Text, Null),
    p("sink", Text, Null),
];
/// pg_trickle's `alter_stream_table` parameters, in its order.
const ALTER: &[Param] = &[
    p("name", Text, Required),
    p("query", Text, Null),
    p("schedule", Text, Null),
    p("refresh_mode", Text, Null),
    p("status", Text, Null),
    p("diamond_consistency", Text, Null),
    p("diamond_schedule_policy", Text, Null),
    p("cdc_mode", Text, Null),
    p("append_only", Bool, Null),
    p("pooler_compatibility_mode", Bool, Null),
    p("tier", Text, Null),
    p("fuse", Text, Null),
    p("fuse_ceiling", Int, Null),
    p("fuse_sensitivity", Int, Null),
    p("partition_by", Text, Null),
    p("max_differential_joins", Int, Null),
    p("max_delta_fraction", Float, Null),
    p("post_refresh_action", Text, Null),
    p("reindex_drift_threshold", Float, Null),
    p("sink", Text, Null),
];
/// `create_stream_table_fast_append_only`.
const FAST_APPEND_ONLY: &[Param] = &[
    p("name", Text, Required),
    p("query", Text, Required),
    p("schedule", Text, DT("calculated")),
    p("cdc_mode", Text, Null),
    p("partition_by", Text, Null),
    p("max_differential_joins", Int, Null),
    p("max_delta_fraction", Float, Null),
];
const NAME_QUERY: &[Param] = &[p("name", Text, Required), p("query", Text, Required)];
const REFRESH_POLICY: &[Param] = &[p("name", Text, Required), p("refresh_mode", Text, Required)];
const DROP: &[Param] = &[p("name", Text, Required), p("cascade", Bool, DB(false))];
const NAME_ONLY: &[Param] = &[p("name", Text, Required)];
const EXPLAIN: &[Param] = &[
    p("name", Text, Required),
    p("with_analyze", Bool, DB(false)),
];
const HISTORY: &[Param] = &[p("name", Text, Required), p("max_rows", Int, DI(20))];

impl ApiFunction {
    /// Every function, for lookups.
    pub const ALL: [ApiFunction; 16] = [
        ApiFunction::CreateStreamTable,
        ApiFunction::CreateStreamTableIfNotExists,
        ApiFunction::CreateOrReplaceStreamTable,
        ApiFunction::AlterStreamTable,
        ApiFunction::DropStreamTable,
        ApiFunction::RefreshStreamTable,
        ApiFunction::ResumeStreamTable,
        ApiFunction::PgtStatus,
        ApiFunction::ExplainSt,
        ApiFunction::GetRefreshHistory,
        ApiFunction::CreateFastAppendOnly,
        ApiFunction::CreateRealtime,
        ApiFunction::CreateBatch,
        ApiFunction::CreateCostOptimized,
        ApiFunction::PauseStreamTable,
        ApiFunction::SetRefreshPolicy,
    ];

    /// The function's SQL name (without the `pgtrickle.` schema).
    pub fn sql_name(self) -> &'static str {
        match self {
            ApiFunction::CreateStreamTable => "create_stream_table",
            ApiFunction::CreateStreamTableIfNotExists => "create_stream_table_if_not_exists",
            ApiFunction::CreateOrReplaceStreamTable => "create_or_replace_stream_table",
            ApiFunction::AlterStreamTable => "alter_stream_table",
            ApiFunction::DropStreamTable => "drop_stream_table",
            ApiFunction::RefreshStreamTable => "refresh_stream_table",
            ApiFunction::ResumeStreamTable => "resume_stream_table",
            ApiFunction::PgtStatus => "pgt_status",
            ApiFunction::ExplainSt => "explain_st",
            ApiFunction::GetRefreshHistory => "get_refresh_history",
            ApiFunction::CreateFastAppendOnly => "create_stream_table_fast_append_only",
            ApiFunction::CreateRealtime => "create_stream_table_realtime",
            ApiFunction::CreateBatch => "create_stream_table_batch",
            ApiFunction::CreateCostOptimized => "create_stream_table_cost_optimized",
            ApiFunction::PauseStreamTable => "pause_stream_table",
            ApiFunction::SetRefreshPolicy => "set_stream_table_refresh_policy",
        }
    }

    /// False for the read functions (`pgt_status`, `explain_st`, `get_refresh_history`),
    /// which are SQL functions in the database; true for the ones the engine answers.
    pub fn changes_things(self) -> bool {
        !matches!(
            self,
            ApiFunction::PgtStatus | ApiFunction::ExplainSt | ApiFunction::GetRefreshHistory
        )
    }

    /// Looks a function up by its (already case-folded) name.
    pub fn by_name(name: &str) -> Option<ApiFunction> {
        ApiFunction::ALL.into_iter().find(|f| f.sql_name() == name)
    }

    /// The declared parameters, in order.
    pub fn params(self) -> &'static [Param] {
        match self {
            ApiFunction::CreateStreamTable
            | ApiFunction::CreateStreamTableIfNotExists
            | ApiFunction::CreateOrReplaceStreamTable => CREATE,
            ApiFunction::AlterStreamTable => ALTER,
            ApiFunction::DropStreamTable => DROP,
            ApiFunction::RefreshStreamTable
            | ApiFunction::ResumeStreamTable
            | ApiFunction::PauseStreamTable => NAME_ONLY,
            ApiFunction::ExplainSt => EXPLAIN,
            ApiFunction::CreateFastAppendOnly => FAST_APPEND_ONLY,
            ApiFunction::CreateRealtime
            | ApiFunction::CreateBatch
            | ApiFunction::CreateCostOptimized => NAME_QUERY,
            ApiFunction::SetRefreshPolicy => REFRESH_POLICY,
            ApiFunction::PgtStatus => &[],
            ApiFunction::GetRefreshHistory => HISTORY,
        }
    }
}
