//! The pgtrickle functions this proxy answers: their names, parameters, types and defaults, as
//! pg_trickle declares them.

/// The SQL type of an API parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `text`
    Text,
    /// `boolean`
    Bool,
    /// `integer`
    Int,
}

impl ParamType {
    /// The PostgreSQL type name, for messages.
    pub fn sql_name(self) -> &'static str {
        match self {
            ParamType::Text => "text",
            ParamType::Bool => "boolean",
            ParamType::Int => "integer",
        }
    }
}

/// A parameter's default: absent means the argument is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

const fn p(name: &'static str, ty: ParamType, default: Default) -> Param {
    Param { name, ty, default }
}

use self::Default::{Bool as DB, Int as DI, Null, Required, Text as DT};
use ParamType::{Bool, Int, Text};

const CREATE: &[Param] = &[
    p("name", Text, Required),
    p("query", Text, Required),
    p("schedule", Text, DT("calculated")),
    p("refresh_mode", Text, DT("AUTO")),
    p("initialize", Bool, DB(true)),
    p("cdc_mode", Text, Null),
];
const ALTER: &[Param] = &[
    p("name", Text, Required),
    p("query", Text, Null),
    p("schedule", Text, Null),
    p("refresh_mode", Text, Null),
    p("status", Text, Null),
    p("cdc_mode", Text, Null),
];
const DROP: &[Param] = &[p("name", Text, Required), p("cascade", Bool, DB(false))];
const NAME_ONLY: &[Param] = &[p("name", Text, Required)];
const HISTORY: &[Param] = &[p("name", Text, Required), p("max_rows", Int, DI(20))];

impl ApiFunction {
    /// Every function, for lookups.
    pub const ALL: [ApiFunction; 10] = [
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
            | ApiFunction::ExplainSt => NAME_ONLY,
            ApiFunction::PgtStatus => &[],
            ApiFunction::GetRefreshHistory => HISTORY,
        }
    }
}
