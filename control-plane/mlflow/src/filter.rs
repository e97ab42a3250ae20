//! MLflow's search language: `filter_string` and `order_by`, parsed into clauses.
//!
//! The grammar is MLflow's (a conjunction of comparisons):
//!
//! ```text
//! filter     := clause ( AND clause )*
//! clause     := identifier comparator value
//! identifier := [ entity "." ] key        key: word, "quoted" or `backticked`
//! entity     := metric(s) | param(s) | parameter(s) | tag(s) | attribute(s) | attr | run | dataset(s)
//! comparator := = | != | <> | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
//! value      := 'string' | "string" | number | ( 'string', ... )
//! ```
//!
//! What each entity accepts (numbers for metrics, strings for params and tags, the
//! attribute's own type) is checked by the caller, which knows its context.
//!
//! Searches run while the organisation's rows are read under the database lock every
//! tenant shares, so a filter is bounded before it is parsed: its length, its clauses, its
//! lists, and each `LIKE` pattern's length and `%` wildcards (matching backtracks to the
//! last `%`, so its cost grows with text length times pattern length).

use std::fmt;

/// What a clause compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
}

impl Op {
    /// Whether the operator orders values (only numbers and timestamps).
    pub fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }

    /// The SQL operator for `=`, `!=` and the orderings.
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "GLOB",
            Op::ILike => "LIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
        }
    }
}

/// The right-hand side of a clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    String(String),
    List(Vec<String>),
}

/// One comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

/// One `order_by` term.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Entity,
    pub key: String,
    pub ascending: bool,
}

/// Longest `filter_string` (or `order_by` term), in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Most clauses joined by `AND` in one filter.
pub const MAX_CLAUSES: usize = 32;
/// Most items of an `IN (…)` list.
pub const MAX_LIST_ITEMS: usize = 100;
/// Longest `LIKE`/`ILIKE` pattern, in characters.
pub const MAX_LIKE_PATTERN_CHARS: usize = 256;
/// Most `%` wildcards in one `LIKE`/`ILIKE` pattern.
pub const MAX_LIKE_WILDCARDS: usize = 8;
/// Most `order_by` terms.
pub const MAX_ORDER_BY_TERMS: usize = 8;

/// Why a filter or order clause was rejected. Callers answer `INVALID_PARAMETER_VALUE`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn err<T>(message: impl fmt::Display) -> Result<T, FilterError> {
    Err(FilterError(message.to_string()))
}

/// Parses a `filter_string`; an empty or blank one is no clause at all.
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>, FilterError> {
    if filter.len() > MAX_FILTER_BYTES {
        return err(format!(
            "the filter is {} bytes long; at most {MAX_FILTER_BYTES} are accepted",
            filter.len()
        ));
    }
    let mut parser = Parser {
        text: filter,
        pos: 0,
    };
    let mut clauses = Vec::new();
    parser.skip_ws();
    if parser.at_end() {
        return Ok(clauses);
    }
    loop {
        if clauses.len() == MAX_CLAUSES {
            return err(format!(
                "the filter has more than {MAX_CLAUSES} clauses; at most {MAX_CLAUSES} are accepted"
            ));
        }
        clauses.push(parser.clause()?);
        parser.skip_ws();
        if parser.at_end() {
            return Ok(clauses);
        }
        let word = parser.word();
        if !word.eq_ignore_ascii_case("and") {
            return err(format!(
                "invalid filter {filter:?}: expected AND at position {}, found {:?} (only AND joins clauses)",
                parser.pos,
                if word.is_empty() { parser.rest() } else { word }
            ));
        }
    }
}

/// Parses every `order_by` term, at most [`MAX_ORDER_BY_TERMS`] of them.
pub fn parse_order_bys(terms: &[String]) -> Result<Vec<OrderBy>, FilterError> {
    if terms.len() > MAX_ORDER_BY_TERMS {
        return err(format!(
            "{} order_by terms; at most {MAX_ORDER_BY_TERMS} are accepted",
            terms.len()
        ));
    }
    terms.iter().map(|term| parse_order_by(term)).collect()
}

/// Parses one `order_by` term: `identifier [ASC|DESC]`.
pub fn parse_order_by(term: &str) -> Result<OrderBy, FilterError> {
    if term.len() > MAX_FILTER_BYTES {
        return err(format!(
            "an order_by term is {} bytes long; at most {MAX_FILTER_BYTES} are accepted",
            term.len()
        ));
    }
    let mut parser = Parser { text: term, pos: 0 };
    parser.skip_ws();
    let (entity, key) = parser.identifier()?;
    parser.skip_ws();
    let direction = parser.word();
    let ascending = match direction.to_ascii_lowercase().as_str() {
        "" | "asc" => true,
        "desc" => false,
        other => {
            return err(format!(
                "invalid order_by {term:?}: unknown direction {other:?}"
            ));
        }
    };
    parser.skip_ws();
    if !parser.at_end() {
        return err(format!(
            "invalid order_by {term:?}: unexpected {:?}",
            parser.rest()
        ));
    }
    Ok(OrderBy {
        entity,
        key,
        ascending,
    })
}

/// Whether `text` matches the SQL `LIKE` `pattern` (`%` any run, `_` one character),
/// case-sensitively unless `ignore_case`.
pub fn like(text: &str, pattern: &str, ignore_case: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if ignore_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (text, pattern) = (fold(text), fold(pattern));
    // Classic wildcard matching with backtracking to the last `%`.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

/// A `LIKE` pattern as an SQLite `GLOB` pattern, which (unlike SQLite's `LIKE`) is
/// case-sensitive, as MLflow's `LIKE` is.
pub fn like_to_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => glob.push('*'),
            '_' => glob.push('?'),
            '*' | '?' | '[' | ']' => {
                glob.push('[');
                glob.push(c);
                glob.push(']');
            }
            c => glob.push(c),
        }
    }
    glob
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    /// A bare word: letters, digits and `_ . - / :`.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':') {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        &self.text[start..self.pos]
    }

    /// A string in `quote`s; a doubled quote stands for itself.
    fn quoted(&mut self, quote: char) -> Result<String, FilterError> {
        debug_assert_eq!(self.peek(), Some(quote));
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return err(format!(
                    "unterminated {quote}-quoted string in {:?}",
                    self.text
                ));
            };
            self.pos += c.len_utf8();
            if c == quote {
                if self.peek() == Some(quote) {
                    self.pos += 1;
                    out.push(quote);
                } else {
                    return Ok(out);
                }
            } else if c == '\\' && self.peek() == Some(quote) {
                self.pos += 1;
                out.push(quote);
            } else {
                out.push(c);
            }
        }
    }

    fn identifier(&mut self) -> Result<(Entity, String), FilterError> {
        let whole = match self.peek() {
            Some(q @ ('"' | '`')) => self.quoted(q)?,
            _ => {
                let word = self.word();
                if word.is_empty() {
                    return err(format!(
                        "invalid filter {:?}: expected an identifier at position {}",
                        self.text, self.pos
                    ));
                }
                word.to_owned()
            }
        };
        // `entity.` followed by a quoted key: `tags."mlflow.runName"`.
        if let Some(prefix) = whole.strip_suffix('.')
            && let Some(q @ ('"' | '`')) = self.peek()
        {
            let entity = entity(prefix).ok_or_else(|| unknown_entity(prefix))?;
            let key = self.quoted(q)?;
            return Ok((entity, key));
        }
        match whole.split_once('.') {
            Some((prefix, key)) => match entity(prefix) {
                Some(entity) if !key.is_empty() => Ok((entity, strip_quotes(key))),
                Some(_) => err(format!("invalid identifier {whole:?}: the key is empty")),
                None => Err(unknown_entity(prefix)),
            },
            // No entity: an attribute (`name LIKE 'x%'`, `status = 'FINISHED'`).
            None => Ok((Entity::Attribute, whole)),
        }
    }

    fn comparator(&mut self) -> Result<Op, FilterError> {
        let rest = self.rest();
        for (symbol, op) in [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("!=", Op::Ne),
            ("<>", Op::Ne),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if rest.starts_with(symbol) {
                self.pos += symbol.len();
                return Ok(op);
            }
        }
        let word = self.word().to_ascii_uppercase();
        match word.as_str() {
            "LIKE" => Ok(Op::Like),
            "ILIKE" => Ok(Op::ILike),
            "IN" => Ok(Op::In),
            "NOT" => {
                self.skip_ws();
                if self.word().eq_ignore_ascii_case("in") {
                    Ok(Op::NotIn)
                } else {
                    err(format!(
                        "invalid filter {:?}: expected IN after NOT",
                        self.text
                    ))
                }
            }
            _ => err(format!(
                "invalid filter {:?}: expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN) at position {}",
                self.text, self.pos
            )),
        }
    }

    fn value(&mut self) -> Result<Value, FilterError> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => Ok(Value::String(self.quoted(q)?)),
            Some('(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if items.len() == MAX_LIST_ITEMS {
                        return err(format!(
                            "a list of the filter has more than {MAX_LIST_ITEMS} items"
                        ));
                    }
                    match self.peek() {
                        Some(q @ ('\'' | '"')) => items.push(self.quoted(q)?),
                        Some(')') if items.is_empty() => {}
                        _ => {
                            return err(format!(
                                "invalid filter {:?}: a list holds quoted strings",
                                self.text
                            ));
                        }
                    }
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(')') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        _ => return err(format!("invalid filter {:?}: unclosed list", self.text)),
                    }
                }
            }
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                let literal = &self.text[start..self.pos];
                literal.parse::<f64>().map(Value::Number).or_else(|_| {
                    err(format!(
                        "invalid filter {:?}: expected a quoted string, a number or a list, found {literal:?}",
                        self.text
                    ))
                })
            }
        }
    }

    fn clause(&mut self) -> Result<Clause, FilterError> {
        self.skip_ws();
        let (entity, key) = self.identifier()?;
        self.skip_ws();
        let op = self.comparator()?;
        self.skip_ws();
        let value = self.value()?;
        let list_op = matches!(op, Op::In | Op::NotIn);
        if list_op != matches!(value, Value::List(_)) {
            return err(format!(
                "invalid filter {:?}: IN and NOT IN take a list, other comparators a single value",
                self.text
            ));
        }
        if let (Op::Like | Op::ILike, Value::String(pattern)) = (op, &value) {
            check_like_pattern(pattern)?;
        }
        Ok(Clause {
            entity,
            key,
            op,
            value,
        })
    }
}

/// Bounds a `LIKE` pattern's length and `%` wildcards, which set the cost of matching it.
fn check_like_pattern(pattern: &str) -> Result<(), FilterError> {
    let chars = pattern.chars().count();
    if chars > MAX_LIKE_PATTERN_CHARS {
        return err(format!(
            "a LIKE pattern has {chars} characters; at most {MAX_LIKE_PATTERN_CHARS} are accepted"
        ));
    }
    let wildcards = pattern.matches('%').count();
    if wildcards > MAX_LIKE_WILDCARDS {
        return err(format!(
            "a LIKE pattern has {wildcards} '%' wildcards; at most {MAX_LIKE_WILDCARDS} are accepted"
        ));
    }
    Ok(())
}

fn strip_quotes(key: &str) -> String {
    for q in ['"', '`'] {
        if let Some(inner) = key.strip_prefix(q).and_then(|k| k.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    key.to_owned()
}

fn entity(prefix: &str) -> Option<Entity> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Entity::Metric,
        "param" | "params" | "parameter" | "parameters" => Entity::Param,
        "tag" | "tags" => Entity::Tag,
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
        "dataset" | "datasets" => Entity::Dataset,
        _ => return None,
    })
}

fn unknown_entity(prefix: &str) -> FilterError {
    FilterError(format!(
        "invalid entity type {prefix:?}: expected one of metrics, params, tags, attributes, datasets"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(entity: Entity, key: &str, op: Op, value: Value) -> Clause {
        Clause {
            entity,
            key: key.into(),
            op,
            value,
        }
    }

    #[test]
    fn filters_are_bounded_before_they_run() {
        assert!(parse_filter(&format!("name = '{}'", "x".repeat(MAX_FILTER_BYTES))).is_err());
        let clauses = |n: usize| vec!["params.a = '1'"; n].join(" AND ");
        assert!(parse_filter(&clauses(MAX_CLAUSES)).is_ok());
        assert!(parse_filter(&clauses(MAX_CLAUSES + 1)).is_err());
        let list = |n: usize| format!("tags.t IN ({})", vec!["'a'"; n].join(", "));
        assert!(parse_filter(&list(MAX_LIST_ITEMS)).is_ok());
        assert!(parse_filter(&list(MAX_LIST_ITEMS + 1)).is_err());
        let like = |pattern: String| parse_filter(&format!("name LIKE '{pattern}'"));
        assert!(like("%a".repeat(MAX_LIKE_WILDCARDS)).is_ok());
        assert!(like("%a".repeat(MAX_LIKE_WILDCARDS + 1)).is_err());
        assert!(like("a".repeat(MAX_LIKE_PATTERN_CHARS + 1)).is_err());
        let orders: Vec<String> = vec!["name".into(); MAX_ORDER_BY_TERMS + 1];
        assert!(parse_order_bys(&orders[..MAX_ORDER_BY_TERMS]).is_ok());
        assert!(parse_order_bys(&orders).is_err());
    }

    #[test]
    fn parses_a_conjunction_of_every_entity() {
        let parsed = parse_filter(
            "metrics.rmse < 0.5 and params.alpha = '0.1' AND tags.\"mlflow.runName\" != 'x' \
             and attributes.status IN ('FINISHED', 'RUNNING') and name ILIKE '%iris%'",
        )
        .expect("valid");
        assert_eq!(
            parsed,
            vec![
                clause(Entity::Metric, "rmse", Op::Lt, Value::Number(0.5)),
                clause(Entity::Param, "alpha", Op::Eq, Value::String("0.1".into())),
                clause(
                    Entity::Tag,
                    "mlflow.runName",
                    Op::Ne,
                    Value::String("x".into())
                ),
                clause(
                    Entity::Attribute,
                    "status",
                    Op::In,
                    Value::List(vec!["FINISHED".into(), "RUNNING".into()])
                ),
                clause(
                    Entity::Attribute,
                    "name",
                    Op::ILike,
                    Value::String("%iris%".into())
                ),
            ]
        );
    }

    #[test]
    fn keys_may_hold_dots_and_backticks() {
        let parsed =
            parse_filter("metrics.train.loss >= -1e-3 and tags.`a b` = \"it's\"").expect("valid");
        assert_eq!(parsed[0].key, "train.loss");
        assert_eq!(parsed[0].value, Value::Number(-1e-3));
        assert_eq!(parsed[1].key, "a b");
        assert_eq!(parsed[1].value, Value::String("it's".into()));
        assert_eq!(parse_filter("  ").expect("blank"), vec![]);
    }

    #[test]
    fn rejects_what_mlflow_rejects() {
        for bad in [
            "metrics.rmse",
            "metrics.rmse < ",
            "metrics.rmse < 1 or params.a = 'b'",
            "foo.bar = 'x'",
            "params.a = 'unterminated",
            "params.a IN 'x'",
            "params.a = ('x')",
            "metrics.a ~ 1",
            "params.a = abc",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn order_by_terms() {
        assert_eq!(
            parse_order_by("metrics.rmse DESC").expect("valid"),
            OrderBy {
                entity: Entity::Metric,
                key: "rmse".into(),
                ascending: false
            }
        );
        assert_eq!(
            parse_order_by("start_time").expect("valid"),
            OrderBy {
                entity: Entity::Attribute,
                key: "start_time".into(),
                ascending: true
            }
        );
        assert!(parse_order_by("metrics.rmse sideways").is_err());
    }

    #[test]
    fn like_is_case_sensitive_and_ilike_is_not() {
        assert!(like("iris-model", "iris%", false));
        assert!(like("iris-model", "%-mo_el", false));
        assert!(!like("Iris", "iris", false));
        assert!(like("Iris", "iris", true));
        assert!(!like("iris", "iris_", false));
        assert_eq!(like_to_glob("a%b_c*"), "a*b?c[*]");
    }
}
