//! The shard-key audit of the PostgreSQL store (docs/ARCHITECTURE.md,
//! `session-store-pg`): every hot statement names the shard it touches, so the
//! schema could be distributed on Citus (or any PostgreSQL-compatible
//! distributed engine) without code changes.
//!
//! The audit reads the store's Rust source for SQL (string literals, `concat!`,
//! the crate's own string macros, `format!` templates) and the migrations for
//! the schema, splits each statement into scopes (one per subquery or CTE) and
//! checks that every distributed table each scope reads or writes is filtered
//! (`WHERE`/`ON`, not under an `OR`) by its distribution column equal to a
//! parameter, to a list of parameters (`= ANY($n)`, `IN ($n, ..)`) or to the
//! same column of a keyed row source (a join), or, for an `INSERT`, that the
//! column list writes it. A PL/pgSQL function of the migrations that a
//! statement calls is audited as part of that statement. Statements that need
//! no key (reference tables only, or cold) are listed in [`CLASSIFIED`] with
//! their reason, and so are bounded reads that take no lock and may ask every
//! node ([`Class::FanOut`], checked to neither lock nor write) and the open
//! findings; any other statement that is not keyed fails. A second test checks the schema against the layout
//! ([`TABLES`]): unique keys include the distribution column, foreign keys stay
//! within a co-location group or point at a reference table.
//!
//! "Keyed" means the statement names its shard; whether a given engine's
//! planner routes every construct (a data-modifying CTE over two co-location
//! groups, say) is for a run on that engine to show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

use super::{rust_files, workspace_root};
use Layout::{Distributed, Local, Reference};

/// How a table of the pg store would be laid out on a distributed PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Sharded by this column; tables sharded by the same column are co-located.
    Distributed(&'static str),
    /// Small, copied to every node: any statement may touch it.
    Reference,
    /// Stays on the coordinator: only cold statements touch it.
    Local,
}

/// Every table the migrations (and `migrate.rs`) create: its layout, and why.
#[rustfmt::skip]
const TABLES: &[(&str, Layout, &str)] = &[
    ("transactions", Distributed("merchant_transaction_id"),
     "every request after creation names the transaction (redeem, status read, provider \
      event, status feed); spreads a large partner over every node"),
    ("outbox", Distributed("merchant_transaction_id"),
     "co-located with its transaction: written in the provider event's transaction, \
      ordered and locked per transaction"),
    ("provider_events", Distributed("merchant_transaction_id"),
     "co-located with the transaction the event applies to, written in its transaction"),
    ("end_users", Distributed("partner_id"),
     "keyed (partner_id, partner_user_id): the KYC read and the upsert name the partner"),
    ("idempotency_legacy_keys", Distributed("partner_id"),
     "keys written before transaction ids were derived from them, looked up by (partner_id, \
      idempotency_key); empties itself within --idempotency-ttl of migration 0011"),
    ("partners", Reference, "partner configuration"),
    ("partner_origins", Reference, "partner configuration"),
    ("partner_ips", Reference, "partner configuration"),
    ("partner_wallets", Reference, "partner configuration"),
    ("partner_signing_keys", Reference, "partner configuration"),
    ("partner_webhook_secrets", Reference, "partner configuration"),
    ("client_tokens", Reference, "a few tokens per partner"),
    ("service_secrets", Reference, "a handful of secrets every instance shares"),
    ("schema_migrations", Local, "migration bookkeeping, on the coordinator"),
];

fn layout(table: &str) -> Option<Layout> {
    TABLES
        .iter()
        .find(|(name, ..)| *name == table)
        .map(|(_, layout, _)| *layout)
}

fn distribution_column(table: &str) -> Option<&'static str> {
    match layout(table) {
        Some(Distributed(key)) => Some(key),
        _ => None,
    }
}

/// How a statement that is not a keyed hot statement is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Touches reference tables only: fine on any node.
    Reference(&'static str),
    /// Off the request path (migrations, the reaper, operators' listings,
    /// LISTEN/NOTIFY plumbing, health checks), so it need not be keyed.
    Cold(&'static str),
    /// A read that takes no lock, which a distributed engine answers from
    /// every node and merges: it names no shard, so each node runs it on its
    /// own shards (ORDER BY and LIMIT pushed down) and the results are merged.
    /// Acceptable on a hot path only as a whole: it takes no lock (nothing to
    /// coordinate across nodes, and Citus runs such a read unchanged, where a
    /// multi-shard `FOR UPDATE SKIP LOCKED` is refused); it is bounded by its
    /// `LIMIT` (each node answers at most that many rows, found through an
    /// index); and it runs once per claim of a background loop, not once per
    /// request, so its cost grows with the nodes (one index probe each) and
    /// not with the traffic. What it finds is then locked or written by a
    /// keyed statement, which checks the rows again. A statement that locks
    /// (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`) or
    /// writes (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, in a CTE or a function
    /// it calls too) can never be FanOut, and neither can one without a
    /// `LIMIT` of its own (checked).
    FanOut(&'static str),
    /// An open finding: a hot statement that is not keyed by the distribution
    /// column of a table it touches. Fix the statement, then delete the line.
    Unkeyed(&'static str),
}

/// Statements by file (under the crate's `src/`) and a piece of their text
/// (whitespace collapsed to one space) that tells them apart: `=text` is a
/// whole statement, `*` every statement of the file that no other line names.
/// A line may name several statements of one kind, a statement matches at most
/// one line besides `*`, and a statement no line names must be a keyed hot
/// statement.
#[rustfmt::skip]
const CLASSIFIED: &[(&str, &str, Class)] = &[
    ("feed.rs", "SELECT pg_notify($1, p)", Class::Cold("NOTIFY plumbing: status announcements")),
    ("idempotency.rs", "SELECT EXISTS (SELECT 1 FROM idempotency_legacy_keys)",
     Class::Cold("whether legacy keys are left: at start-up and after each reaper batch")),
    ("idempotency.rs", "DELETE FROM idempotency_legacy_keys WHERE (partner_id, idempotency_key) IN",
     Class::Cold("the idempotency-key reaper, a periodic background sweep")),
    ("idempotency.rs", "ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
     Class::Cold("the idempotency-key reaper, a periodic background sweep")),
    ("lib.rs", "INSERT INTO service_secrets",
     Class::Reference("the shared init-token secret, created once")),
    ("lib.rs", "SELECT value FROM service_secrets",
     Class::Reference("the shared init-token secret, read at start-up")),
    ("lib.rs", "=SELECT 1", Class::Cold("the readiness check, no table")),
    ("migrate.rs", "*", Class::Cold("migrations, at start-up")),
    ("partners/listener.rs", "LISTEN ",
     Class::Cold("LISTEN plumbing: the instance's one listening connection")),
    ("partners/sql.rs", "*", Class::Reference(
        "partner configuration: the snapshot's reloads, the registry's reads and writes, and \
         a token the snapshot has not seen yet")),
    ("partners/sql.rs", "=SELECT pg_notify($1, $2)",
     Class::Cold("NOTIFY plumbing: announces an operator's partner write")),
    ("wake.rs", "=SELECT pg_notify($1, '')",
     Class::Cold("NOTIFY plumbing: wakes other instances' dispatchers")),
    ("webhooks.rs", "SELECT 1 FROM transactions WHERE merchant_transaction_id = (SELECT",
     Class::Cold("an operator's requeue locks the delivery's transaction")),
    ("webhooks.rs", "SELECT merchant_transaction_id, id, partner_id FROM outbox WHERE state",
     Class::FanOut(
        "the dispatcher's claim finds the oldest due deliveries of all transactions, without \
         a lock, then claims them by transaction and id (docs/scaling.md, \"Citus\")")),
    ("webhooks.rs", "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
     Class::Cold("the pending-deliveries gauge, read per metrics scrape")),
    ("webhooks.rs", "SELECT id, partner_id, merchant_transaction_id, event, state",
     Class::Cold("the operators' delivery listing")),
    ("webhooks.rs", "=SET LOCAL synchronous_commit = on",
     Class::Cold("an operator's requeue or replay, no table")),
    ("webhooks.rs", "WHERE id = $1 AND state <> 'none' RETURNING merchant_transaction_id",
     Class::Cold("an operator's requeue")),
    ("webhooks.rs", "ORDER BY merchant_transaction_id FOR NO KEY UPDATE",
     Class::Cold("an operator's replay of a partner's deliveries")),
    ("webhooks.rs", "WHERE partner_id = $1 AND created_at >= $2 AND state <> 'none' RETURNING",
     Class::Cold("an operator's replay of a partner's deliveries")),
    ("webhooks.rs", "=SELECT pg_notify($1, '')",
     Class::Cold("NOTIFY plumbing: wakes the dispatchers after an operator's requeue")),
];

/// Schema features that a distributed table cannot have (a unique key
/// without its distribution column, a foreign key across co-location groups),
/// as the schema check words them: open findings, each with why it stays.
#[rustfmt::skip]
const SCHEMA_FINDINGS: &[(&str, &str)] = &[
];

/// What a `{placeholder}` of a `format!`-built statement stands for.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// The first string of each tuple of this array `const` of the same file.
    Columns(&'static str),
    /// Text that names no table and no key column (written `__name__`).
    Opaque,
}

/// Every placeholder of a `format!`-built statement: file, name, filling.
#[rustfmt::skip]
const PLACEHOLDERS: &[(&str, &str, Fill)] = &[
    ("batch.rs", "names", Fill::Columns("TRANSACTION_COLUMNS")),
    // The same columns as values, cast back from array literals.
    ("batch.rs", "values", Fill::Opaque),
    // One `$n::type[]` parameter per column.
    ("batch.rs", "arrays", Fill::Opaque),
    // `expires_at` or `revoked_at`, the column a token update sets.
    ("partners/sql.rs", "column", Fill::Opaque),
    // Channel names.
    ("partners/listener.rs", "CHANNEL", Fill::Opaque),
    ("partners/listener.rs", "OUTBOX_CHANNEL", Fill::Opaque),
    ("partners/listener.rs", "STATUS_CHANNEL", Fill::Opaque),
];

/// Calls that run SQL which is not written at the call (file, the call's
/// first argument), where the audit reads it instead.
#[rustfmt::skip]
const SQL_ARGUMENTS: &[(&str, &str, &str)] = &[
    ("migrate.rs", "migration . sql",
     "the embedded migrations: their tables and keys are the schema check's"),
    ("partners/sql.rs", "query",
     "`read`'s argument: the `children!` statements, read where `read` is called"),
    ("batch.rs", "crate : : idempotency : : STORED_IDS",
     "the look-up of taken ids, a `const` of idempotency.rs audited there"),
];

/// The methods of tokio-postgres clients and transactions that take SQL (or a
/// statement prepared from it) as their first argument.
const SQL_METHODS: &str = "prepare prepare_cached prepare_typed prepare_typed_cached execute \
     execute_raw query query_one query_opt query_raw query_typed batch_execute simple_query";

/// Whether `word` is one of the space-separated `words`.
fn one_of(words: &str, word: &str) -> bool {
    words.split_whitespace().any(|w| w == word)
}

/// A Rust token: a string literal (decoded), an identifier or another
/// literal, or punctuation (brackets included: the stream is flat).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rs {
    Str(String),
    Ident(String),
    Punct(char),
}

type Tokens = Vec<(Rs, usize)>;

/// `source` as flat tokens with their line numbers: string literals decoded,
/// comments (doc comments too) and lifetimes dropped.
fn rust_tokens(source: &str) -> Tokens {
    let stream: TokenStream = source.parse().expect("Rust source");
    let mut tokens = Vec::new();
    flatten(stream, &mut tokens);
    tokens
}

fn flatten(stream: TokenStream, out: &mut Tokens) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        let line = trees[i].span().start().line;
        match &trees[i] {
            TokenTree::Group(group) => {
                let brackets = match group.delimiter() {
                    Delimiter::Parenthesis => Some(('(', ')')),
                    Delimiter::Bracket => Some(('[', ']')),
                    Delimiter::Brace => Some(('{', '}')),
                    Delimiter::None => None,
                };
                out.extend(brackets.map(|(open, _)| (Rs::Punct(open), line)));
                flatten(group.stream(), out);
                let end = group.span_close().start().line;
                out.extend(brackets.map(|(_, close)| (Rs::Punct(close), end)));
            }
            // A doc comment (`#[doc = ".."]`, `#![doc = ".."]`) is a comment.
            TokenTree::Punct(p) if p.as_char() == '#' && doc_attribute(&trees[i + 1..]) > 0 => {
                i += doc_attribute(&trees[i + 1..]);
            }
            // A lifetime: the quote and its name.
            TokenTree::Punct(p) if p.as_char() == '\'' => i += 1,
            TokenTree::Punct(p) => out.push((Rs::Punct(p.as_char()), line)),
            TokenTree::Ident(ident) => out.push((Rs::Ident(ident.to_string()), line)),
            TokenTree::Literal(literal) => {
                let token = match syn::Lit::new(literal.clone()) {
                    syn::Lit::Str(text) => Rs::Str(text.value()),
                    syn::Lit::ByteStr(bytes) => {
                        Rs::Str(String::from_utf8_lossy(&bytes.value()).into_owned())
                    }
                    _ => Rs::Ident(literal.to_string()),
                };
                out.push((token, line));
            }
        }
        i += 1;
    }
}

/// How many trees after a `#` make a doc attribute (`[doc = ..]` or
/// `![doc = ..]`): 0 when they are not one.
fn doc_attribute(after: &[TokenTree]) -> usize {
    let bang =
        usize::from(matches!(after.first(), Some(TokenTree::Punct(p)) if p.as_char() == '!'));
    match after.get(bang) {
        Some(TokenTree::Group(group))
            if group.delimiter() == Delimiter::Bracket
                && group
                    .stream()
                    .into_iter()
                    .next()
                    .is_some_and(|w| w.to_string() == "doc") =>
        {
            bang + 1
        }
        _ => 0,
    }
}

/// The change of bracket depth a Rust token makes.
fn rs_depth((token, _): &(Rs, usize)) -> isize {
    match token {
        Rs::Punct('(' | '[' | '{') => 1,
        Rs::Punct(')' | ']' | '}') => -1,
        _ => 0,
    }
}

/// The index of the bracket that closes the one at `open`.
fn closing(tokens: &[(Rs, usize)], open: usize) -> usize {
    let mut depth = 0isize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        depth = (depth + rs_depth(token)).max(0);
        if depth == 0 && rs_depth(token) < 0 {
            return i;
        }
    }
    tokens.len().saturating_sub(1)
}

/// `tokens` split at the commas outside brackets (`comma`), a trailing empty
/// part left out; `depth` is the change of bracket depth a token makes.
fn split_commas<T>(tokens: &[T], depth: fn(&T) -> isize, comma: fn(&T) -> bool) -> Vec<&[T]> {
    let mut parts = Vec::new();
    let (mut level, mut start) = (0isize, 0);
    for (i, token) in tokens.iter().enumerate() {
        level = (level + depth(token)).max(0);
        if level == 0 && comma(token) {
            parts.push(&tokens[start..i]);
            start = i + 1;
        }
    }
    if start < tokens.len() {
        parts.push(&tokens[start..]);
    }
    parts
}

/// A call's arguments (without its brackets).
fn arguments(tokens: &[(Rs, usize)]) -> Vec<&[(Rs, usize)]> {
    split_commas(tokens, rs_depth, |(token, _)| *token == Rs::Punct(','))
}

/// Tokens as text, for messages and for matching [`SQL_ARGUMENTS`].
fn render(tokens: &[(Rs, usize)]) -> String {
    let words: Vec<String> = tokens
        .iter()
        .map(|(token, _)| match token {
            Rs::Str(text) => format!("{text:?}"),
            Rs::Ident(name) => name.clone(),
            Rs::Punct(c) => c.to_string(),
        })
        .collect();
    words.join(" ")
}

/// A single-arm `macro_rules!` macro: its `$parameters` and its body.
#[derive(Debug, Clone)]
struct Macro {
    params: Vec<String>,
    body: Tokens,
}

/// The single-arm macros defined in `tokens`, and the token ranges of every
/// macro definition (whose bodies are read where the macro is used).
fn macros_of(tokens: &[(Rs, usize)]) -> (BTreeMap<String, Macro>, Vec<(usize, usize)>) {
    let mut macros = BTreeMap::new();
    let mut ranges = Vec::new();
    for i in 0..tokens.len().saturating_sub(4) {
        let (Rs::Ident(keyword), Rs::Punct('!'), Rs::Ident(name)) =
            (&tokens[i].0, &tokens[i + 1].0, &tokens[i + 2].0)
        else {
            continue;
        };
        if keyword != "macro_rules" {
            continue;
        }
        let end = closing(tokens, i + 3);
        ranges.push((i, end));
        if tokens[i + 4].0 != Rs::Punct('(') {
            continue;
        }
        let pattern_end = closing(tokens, i + 4);
        let params = tokens[i + 4..pattern_end]
            .windows(2)
            .filter_map(|pair| match (&pair[0].0, &pair[1].0) {
                (Rs::Punct('$'), Rs::Ident(param)) => Some(param.clone()),
                _ => None,
            })
            .collect();
        // `=>` is two tokens; the body's bracket follows.
        let body_open = pattern_end + 3;
        if body_open >= end {
            continue;
        }
        let body_end = closing(tokens, body_open);
        let single_arm = body_end + 1 == end
            || (body_end + 2 == end && tokens[body_end + 1].0 == Rs::Punct(';'));
        if single_arm {
            let body = tokens[body_open + 1..body_end].to_vec();
            macros.insert(name.clone(), Macro { params, body });
        }
    }
    (macros, ranges)
}

/// The text of a string expression: a literal, a `concat!` of pieces, a
/// call of one of `macros` (whose body is such an expression) or a macro
/// parameter bound in `bound`. A piece it cannot read becomes `⟨piece⟩` and
/// is added to `unread`.
fn string_of(
    tokens: &[(Rs, usize)],
    macros: &BTreeMap<String, Macro>,
    bound: &BTreeMap<String, String>,
    unread: &mut Vec<String>,
) -> String {
    let tokens = match tokens.first() {
        Some((Rs::Punct('&'), _)) => &tokens[1..],
        _ => tokens,
    };
    let kinds: Vec<&Rs> = tokens.iter().map(|(token, _)| token).collect();
    match kinds.as_slice() {
        [Rs::Str(text)] => return text.clone(),
        [Rs::Punct('$'), Rs::Ident(param)] if bound.contains_key(param) => {
            return bound[param].clone();
        }
        [
            Rs::Ident(name),
            Rs::Punct('!'),
            Rs::Punct('(' | '[' | '{'),
            ..,
        ] => {
            let args = arguments(&tokens[3..tokens.len() - 1]);
            let mut each = |arg: &&[(Rs, usize)]| string_of(arg, macros, bound, unread);
            if name == "concat" {
                return args.iter().map(&mut each).collect();
            }
            if let Some(called) = macros.get(name).filter(|m| m.params.len() == args.len()) {
                let values = args.iter().map(&mut each).collect::<Vec<_>>();
                let bound = called.params.iter().cloned().zip(values).collect();
                return string_of(&called.body, macros, &bound, unread);
            }
        }
        _ => {}
    }
    let piece = render(tokens);
    unread.push(piece.clone());
    format!("⟨{piece}⟩")
}

/// The `{placeholders}` of a `format!` template filled from [`PLACEHOLDERS`];
/// an unknown one becomes `⟨name⟩` and is added to `unread`.
fn fill_template(
    file: &str,
    template: &str,
    tokens: &[(Rs, usize)],
    unread: &mut Vec<String>,
) -> String {
    let mut text = String::new();
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        text.push_str(&rest[..at]);
        let brace = &rest[at..];
        if brace.starts_with("{{") || brace.starts_with("}}") {
            text.push_str(&brace[..1]);
            rest = &brace[2..];
            continue;
        }
        let Some(end) = brace.find('}').filter(|_| brace.starts_with('{')) else {
            text.push_str(&brace[..1]);
            rest = &brace[1..];
            continue;
        };
        let name = brace[1..end].split(':').next().unwrap_or("").trim();
        let fill = PLACEHOLDERS
            .iter()
            .find(|(f, n, _)| *f == file && *n == name)
            .map(|(_, _, fill)| *fill);
        match fill {
            Some(Fill::Columns(array)) => text.push_str(&const_columns(tokens, array).join(", ")),
            Some(Fill::Opaque) => text.push_str(&format!("__{name}__")),
            None => {
                unread.push(format!("{{{name}}}"));
                text.push_str(&format!("⟨{name}⟩"));
            }
        }
        rest = &brace[end + 1..];
    }
    text.push_str(rest);
    text
}

/// The first string of each tuple of the array `const name` in `tokens`.
fn const_columns(tokens: &[(Rs, usize)], name: &str) -> Vec<String> {
    let Some(start) = tokens.windows(2).position(|pair| {
        pair[0].0 == Rs::Ident("const".into()) && pair[1].0 == Rs::Ident(name.into())
    }) else {
        return Vec::new();
    };
    let Some(open) = (start..tokens.len()).find(|&i| tokens[i].0 == Rs::Punct('=')) else {
        return Vec::new();
    };
    let end = closing(tokens, open + 1);
    let mut columns = Vec::new();
    let mut depth = 0usize;
    for i in open + 1..end {
        match &tokens[i].0 {
            Rs::Punct('(') => {
                depth += 1;
                if let (1, Some((Rs::Str(column), _))) = (depth, tokens.get(i + 1)) {
                    columns.push(column.clone());
                }
            }
            Rs::Punct(')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    columns
}

/// One string expression of a source file that reads as SQL.
#[derive(Debug, Clone)]
struct Statement {
    line: usize,
    /// The text, whitespace collapsed to one space.
    text: String,
    /// Pieces the audit could not read (a macro it does not know, a
    /// placeholder [`PLACEHOLDERS`] does not fill).
    unread: Vec<String>,
}

/// Whether `text` is SQL: it starts with an SQL command in capitals.
fn is_sql(text: &str) -> bool {
    const COMMANDS: &str = "SELECT INSERT UPDATE DELETE WITH MERGE VALUES LISTEN UNLISTEN NOTIFY \
         SET RESET CREATE ALTER DROP TRUNCATE LOCK COPY BEGIN COMMIT ROLLBACK DO CALL PERFORM";
    let first: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    let after = text.trim_start()[first.len()..].chars().next();
    one_of(COMMANDS, &first) && after.is_none_or(|c| c.is_whitespace() || c == ';')
}

/// Whether `text`, though not [`is_sql`], names a table of the schema the way
/// SQL does (`from transactions`, `into outbox`): a statement the audit would
/// otherwise miss, such as lower-case SQL or a fragment pasted together.
fn looks_like_sql(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|pair| {
        ["from", "into", "update", "join", "table"].contains(&pair[0]) && layout(pair[1]).is_some()
    })
}

/// What one source file says about SQL: its statements, the string
/// expressions that look like SQL but are not read as statements, and the
/// calls whose SQL the audit cannot see.
#[derive(Debug, Default)]
struct SourceSql {
    statements: Vec<Statement>,
    unrecognised: Vec<(usize, String)>,
    unseen_calls: Vec<(usize, String)>,
}

/// The SQL of one source file (test modules left out). `macros` are the
/// crate's single-arm macros.
fn sql_of_source(file: &str, source: &str, macros: &BTreeMap<String, Macro>) -> SourceSql {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let tokens = rust_tokens(code);
    let (_, macro_ranges) = macros_of(&tokens);
    let mut found = SourceSql::default();
    // Every string expression, with the index of its first token.
    let mut strings: Vec<(usize, Statement)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some(&(_, end)) = macro_ranges.iter().find(|(start, _)| *start == i) {
            i = end + 1;
            continue;
        }
        let line = tokens[i].1;
        let mut unread = Vec::new();
        let kinds: Vec<&Rs> = tokens[i..tokens.len().min(i + 4)]
            .iter()
            .map(|(token, _)| token)
            .collect();
        let (text, next) = match kinds.as_slice() {
            // Log messages are text for people ("NOTIFY .. not sent"), never run.
            [Rs::Ident(name), Rs::Punct('!'), Rs::Punct('('), ..]
                if one_of("trace debug info warn error event", name) =>
            {
                i = closing(&tokens, i + 2) + 1;
                continue;
            }
            [Rs::Ident(name), Rs::Punct('!'), Rs::Punct('(' | '['), ..]
                if name == "concat" || macros.contains_key(name) =>
            {
                let end = closing(&tokens, i + 2);
                let text = string_of(&tokens[i..=end], macros, &BTreeMap::new(), &mut unread);
                (text, end + 1)
            }
            [
                Rs::Ident(name),
                Rs::Punct('!'),
                Rs::Punct('('),
                Rs::Str(template),
            ] if name == "format" || name == "format_args" => {
                (fill_template(file, template, &tokens, &mut unread), i + 4)
            }
            [Rs::Str(text), ..] => (text.clone(), i + 1),
            _ => {
                i += 1;
                continue;
            }
        };
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let statement = Statement { line, text, unread };
        strings.push((i, statement));
        i = next;
    }
    for (_, statement) in &strings {
        if is_sql(&statement.text) {
            found.statements.push(statement.clone());
        } else if looks_like_sql(&statement.text) {
            found
                .unrecognised
                .push((statement.line, statement.text.clone()));
        }
    }
    let sql_at = |start: usize, end: usize| {
        strings
            .iter()
            .any(|(at, statement)| (start..end).contains(at) && is_sql(&statement.text))
    };
    // `const`/`static` items and `let` bindings: name, and the token range of
    // their initialiser.
    let mut bindings: Vec<(String, usize, usize)> = Vec::new();
    for i in 0..tokens.len().saturating_sub(2) {
        let name = match (&tokens[i].0, &tokens[i + 1].0, &tokens[i + 2].0) {
            (Rs::Ident(k), Rs::Ident(m), Rs::Ident(name)) if k == "let" && m == "mut" => name,
            (Rs::Ident(k), Rs::Ident(name), _)
                if one_of("let const static", k) && name != "mut" =>
            {
                name
            }
            _ => continue,
        };
        // It ends at its `;`, or where the block around it does.
        let mut depth = 0;
        let end = (i..tokens.len()).find(|&j| {
            depth += rs_depth(&tokens[j]);
            depth < 0 || (depth == 0 && tokens[j].0 == Rs::Punct(';'))
        });
        bindings.push((name.clone(), i, end.unwrap_or(tokens.len())));
    }
    for i in 0..tokens.len().saturating_sub(3) {
        let (Rs::Punct('.'), Rs::Ident(method), Rs::Punct('(')) =
            (&tokens[i].0, &tokens[i + 1].0, &tokens[i + 2].0)
        else {
            continue;
        };
        if !one_of(SQL_METHODS, method) {
            continue;
        }
        let end = closing(&tokens, i + 2);
        let args = arguments(&tokens[i + 3..end]);
        let Some(first) = args.first() else { continue };
        let first: Vec<(Rs, usize)> = first
            .iter()
            .skip_while(|(token, _)| matches!(token, Rs::Punct('&' | '*')))
            .cloned()
            .collect();
        let seen = match first.as_slice() {
            [(Rs::Str(_), _), ..] => true,
            [(Rs::Ident(_), _), (Rs::Punct('!'), _), ..] => true,
            // The nearest binding of the name before the call (else after it).
            [(Rs::Ident(name), _)] => bindings
                .iter()
                .rfind(|(bound, at, _)| bound == name && *at < i)
                .or_else(|| bindings.iter().find(|(bound, ..)| bound == name))
                .is_some_and(|&(_, start, end)| {
                    sql_at(start, end)
                        || tokens[start..end].iter().any(
                            |(token, _)| matches!(token, Rs::Ident(m) if m.starts_with("prepare")),
                        )
                }),
            _ => false,
        };
        let argument = render(&first);
        let listed = SQL_ARGUMENTS
            .iter()
            .any(|(f, arg, _)| *f == file && *arg == argument);
        if !seen && !listed {
            found
                .unseen_calls
                .push((tokens[i].1, format!(".{method}({argument}, ..)")));
        }
    }
    found
}

/// An SQL token. Words are lower-case and keep their qualifier (`o.id`);
/// a `Sub` stands for a subquery, a scope of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sql {
    Word(String),
    Param,
    Value,
    Body(String),
    Op(String),
    Open,
    Close,
    Sub(usize),
}

/// SQL text as tokens; words in `params` (a function's parameters) are `Param`.
fn sql_tokens(text: &str, params: &[String]) -> Vec<Sql> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && at(i + 1) == '-' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            i = (i + 2..chars.len())
                .find(|&j| chars[j] == '*' && at(j + 1) == '/')
                .map_or(chars.len(), |j| j + 2);
        } else if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() {
                if chars[i] == c && at(i + 1) == c {
                    i += 2;
                } else if chars[i] == c {
                    i += 1;
                    break;
                } else {
                    i += 1;
                }
            }
            tokens.push(Sql::Value);
        } else if c == '$' && at(i + 1).is_ascii_digit() {
            i += 1;
            while at(i).is_ascii_digit() {
                i += 1;
            }
            tokens.push(Sql::Param);
        } else if c == '$' {
            // A dollar-quoted body: $$ ... $$ or $tag$ ... $tag$.
            let tag_end = (i + 1..chars.len()).find(|&j| !word(chars[j]));
            match tag_end.filter(|&j| chars[j] == '$') {
                Some(j) => {
                    let tag: Vec<char> = chars[i..=j].to_vec();
                    let end = (j + 1..chars.len())
                        .find(|&k| chars[k..].starts_with(&tag))
                        .unwrap_or(chars.len());
                    tokens.push(Sql::Body(chars[j + 1..end].iter().collect()));
                    i = (end + tag.len()).min(chars.len());
                }
                None => {
                    tokens.push(Sql::Op("$".into()));
                    i += 1;
                }
            }
        } else if word(c) {
            let begin = i;
            while i < chars.len() && (word(chars[i]) || (chars[i] == '.' && word(at(i + 1)))) {
                i += 1;
            }
            let text = chars[begin..i].iter().collect::<String>().to_lowercase();
            tokens.push(if c.is_ascii_digit() {
                Sql::Value
            } else if params.contains(&text) {
                Sql::Param
            } else {
                Sql::Word(text)
            });
        } else if c == '(' {
            tokens.push(Sql::Open);
            i += 1;
        } else if c == ')' {
            tokens.push(Sql::Close);
            i += 1;
        } else if "<>=!|:".contains(c) {
            let begin = i;
            while i < chars.len() && "<>=!|:".contains(chars[i]) {
                i += 1;
            }
            tokens.push(Sql::Op(chars[begin..i].iter().collect()));
        } else {
            tokens.push(Sql::Op(c.to_string()));
            i += 1;
        }
    }
    tokens
}

/// The change of bracket depth an SQL token makes.
fn sql_depth(token: &Sql) -> isize {
    match token {
        Sql::Open => 1,
        Sql::Close => -1,
        _ => 0,
    }
}

/// `tokens` split at the commas outside brackets.
fn sql_commas(tokens: &[Sql]) -> Vec<&[Sql]> {
    split_commas(tokens, sql_depth, |token| *token == Sql::Op(",".into()))
}

fn word(token: Option<&Sql>, expected: &str) -> bool {
    matches!(token, Some(Sql::Word(w)) if w == expected)
}

/// Words that are never a column, a table or an alias.
const KEYWORDS: &str = "all and any as asc between by case conflict cross default delete desc \
     distinct do else end except exists false fetch for from full group having ilike in inner \
     insert intersect into is join lateral left like limit natural not nothing null offset on \
     only or order outer returning right select set skip table then true union update using \
     values when where window with";

fn keyword(word: &str) -> bool {
    one_of(KEYWORDS, word)
}

/// A statement split into scopes: each parenthesised subquery (SELECT,
/// INSERT, UPDATE, DELETE, WITH, VALUES) is a scope of its own, which its
/// parent sees as one `Sub` token. Scope 0 is the statement itself.
fn sql_scopes(tokens: &[Sql]) -> Vec<Vec<Sql>> {
    const STARTS: &str = "select insert update delete with values";
    let mut done: Vec<Vec<Sql>> = vec![Vec::new()];
    // Open scopes, each with its own tokens and its depth of plain brackets.
    let mut open: Vec<(Vec<Sql>, usize)> = vec![(Vec::new(), 0)];
    for (i, token) in tokens.iter().enumerate() {
        let starts_scope = *token == Sql::Open
            && matches!(tokens.get(i + 1), Some(Sql::Word(w)) if one_of(STARTS, w));
        if starts_scope {
            open.push((Vec::new(), 0));
            continue;
        }
        let ends_scope =
            *token == Sql::Close && open.len() > 1 && open.last().is_some_and(|s| s.1 == 0);
        if ends_scope {
            let (scope, _) = open.pop().expect("a subquery");
            done.push(scope);
            let sub = Sql::Sub(done.len() - 1);
            open.last_mut().expect("its parent").0.push(sub);
            continue;
        }
        let (scope, depth) = open.last_mut().expect("the statement");
        match token {
            Sql::Open => *depth += 1,
            Sql::Close => *depth = depth.saturating_sub(1),
            _ => {}
        }
        scope.push(token.clone());
    }
    while open.len() > 1 {
        let (scope, _) = open.pop().expect("an unclosed subquery");
        open.last_mut().expect("its parent").0.extend(scope);
    }
    done[0] = open.pop().expect("the statement").0;
    done
}

/// A table a scope reads or writes.
#[derive(Debug)]
struct TableRef {
    table: String,
    alias: Option<String>,
    /// `INSERT INTO table`: keyed by its column list, not by conditions.
    insert: bool,
    at: usize,
}

fn table_refs(scope: &[Sql]) -> Vec<TableRef> {
    let mut refs = Vec::new();
    for (at, token) in scope.iter().enumerate() {
        let Sql::Word(name) = token else { continue };
        if layout(name).is_none() {
            continue;
        }
        let alias_at = if word(scope.get(at + 1), "as") {
            at + 2
        } else {
            at + 1
        };
        let alias = match scope.get(alias_at) {
            Some(Sql::Word(alias)) if !keyword(alias) => Some(alias.clone()),
            _ => None,
        };
        let insert = at > 0 && word(scope.get(at - 1), "into");
        refs.push(TableRef {
            table: name.clone(),
            alias,
            insert,
            at,
        });
    }
    refs
}

/// One side of an equality in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Side {
    /// A parameter, or a list of them (`= ANY($n)`, `IN ($n, ..)`).
    Param,
    Column(String),
    /// A subquery, a literal, an expression.
    Other,
}

/// The equalities of a scope's conditions (`WHERE`, `JOIN .. ON`) that bind:
/// not under an `OR`. Each is (column as written, the other side).
fn equalities(scope: &[Sql]) -> Vec<(String, Side)> {
    const ENDS: &str = "group order limit offset for returning union except intersect \
         having window join inner left right full cross set do select values";
    let n = scope.len();
    // Bracket depth of each token (a bracket has its outer depth) and the
    // condition each token belongs to, with the depth it started at.
    let mut depth = vec![0usize; n];
    let mut region: Vec<Option<(usize, usize)>> = vec![None; n];
    let (mut d, mut current, mut regions) = (0usize, None, 0);
    for (i, token) in scope.iter().enumerate() {
        if *token == Sql::Close {
            d = d.saturating_sub(1);
        }
        depth[i] = d;
        let ends = |(_, start): (usize, usize)| match token {
            Sql::Close => start > d,
            Sql::Word(w) => start == d && one_of(ENDS, w),
            Sql::Op(op) => op == ";",
            _ => false,
        };
        match token {
            Sql::Open => d += 1,
            Sql::Word(w) if w == "where" || (w == "on" && !word(scope.get(i + 1), "conflict")) => {
                regions += 1;
                current = Some((regions, d));
            }
            _ if current.is_some_and(ends) => current = None,
            _ => {}
        }
        region[i] = current;
    }
    let or_guarded = |i: usize| {
        let Some((id, start)) = region[i] else {
            return true;
        };
        (start..=depth[i]).any(|level| {
            let inside = |k: usize| region[k].is_some_and(|(r, _)| r == id) && depth[k] >= level;
            let mut a = i;
            while a > 0 && inside(a - 1) {
                a -= 1;
            }
            let mut b = i;
            while b + 1 < n && inside(b + 1) {
                b += 1;
            }
            (a..=b).any(|k| depth[k] == level && word(scope.get(k), "or"))
        })
    };
    let column = |w: &str, next: Option<&Sql>| {
        !keyword(w.split('.').next_back().unwrap_or(w)) && next != Some(&Sql::Open)
    };
    let after = |i: usize| match (scope.get(i), scope.get(i + 1), scope.get(i + 2)) {
        (Some(Sql::Param), ..) => Side::Param,
        (Some(Sql::Word(w)), Some(Sql::Open), Some(Sql::Param)) if w == "any" => Side::Param,
        (Some(Sql::Word(w)), next, _) if column(w, next) => Side::Column(w.clone()),
        _ => Side::Other,
    };
    let before = |i: usize| {
        // Back over casts (`$1::text[] = ..`) to the operand.
        let mut j = i;
        loop {
            if j == 0 {
                return Side::Other;
            }
            j -= 1;
            match &scope[j] {
                Sql::Op(op) if op == "]" => {
                    while j > 0 && scope[j] != Sql::Op("[".into()) {
                        j -= 1;
                    }
                }
                Sql::Word(_) if j > 0 && scope[j - 1] == Sql::Op("::".into()) => j -= 1,
                Sql::Param => return Side::Param,
                Sql::Word(w) if column(w, scope.get(j + 1)) => return Side::Column(w.clone()),
                _ => return Side::Other,
            }
        }
    };
    let mut found = Vec::new();
    for i in 0..n {
        let (left, right) = match &scope[i] {
            Sql::Op(op) if op == "=" => (before(i), after(i + 1)),
            Sql::Word(w) if w == "in" && scope.get(i + 1) == Some(&Sql::Open) => {
                let right = if scope.get(i + 2) == Some(&Sql::Param) {
                    Side::Param
                } else {
                    Side::Other
                };
                (before(i), right)
            }
            _ => continue,
        };
        if or_guarded(i) {
            continue;
        }
        match (left, right) {
            (Side::Column(c), Side::Param) | (Side::Param, Side::Column(c)) => {
                found.push((c, Side::Param));
            }
            (Side::Column(a), Side::Column(b)) => {
                found.push((a.clone(), Side::Column(b.clone())));
                found.push((b, Side::Column(a)));
            }
            (Side::Column(c), Side::Other) | (Side::Other, Side::Column(c)) => {
                found.push((c, Side::Other));
            }
            _ => {}
        }
    }
    found
}

/// A PL/pgSQL function of the migrations: its parameters and statements.
#[derive(Debug, Clone)]
struct Function {
    params: Vec<String>,
    statements: Vec<String>,
}

/// The functions the migrations create, by name.
fn functions_of(migrations: &[String]) -> BTreeMap<String, Function> {
    let mut functions = BTreeMap::new();
    for sql in migrations {
        let tokens = sql_tokens(sql, &[]);
        for i in 1..tokens.len().saturating_sub(2) {
            let create = word(tokens.get(i - 1), "create") || word(tokens.get(i - 1), "replace");
            let (true, Some(Sql::Word(name)), Some(Sql::Open)) = (
                create && word(tokens.get(i), "function"),
                tokens.get(i + 1),
                tokens.get(i + 2),
            ) else {
                continue;
            };
            let mut depth = 0;
            let close = (i + 2..tokens.len())
                .find(|&j| {
                    depth += sql_depth(&tokens[j]);
                    depth == 0
                })
                .unwrap_or(tokens.len());
            // Each parameter's name is the first word of its declaration.
            let params = sql_commas(&tokens[i + 3..close])
                .iter()
                .filter_map(|declared| match declared.first() {
                    Some(Sql::Word(param)) => Some(param.clone()),
                    _ => None,
                })
                .collect();
            let Some(body) = tokens[close..]
                .iter()
                .take_while(|t| **t != Sql::Op(";".into()))
                .find_map(|t| match t {
                    Sql::Body(body) => Some(body.clone()),
                    _ => None,
                })
            else {
                continue;
            };
            let statements = body
                .split(';')
                .map(|s| {
                    let s = s.trim();
                    let starts = |s: &str, word: &str| {
                        s.get(..word.len())
                            .is_some_and(|head| head.eq_ignore_ascii_case(word))
                    };
                    let s = if starts(s, "begin") { s[5..].trim() } else { s };
                    if starts(s, "perform") {
                        format!("SELECT{}", &s[7..])
                    } else {
                        s.to_owned()
                    }
                })
                .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("end"))
                .collect();
            functions.insert(name.clone(), Function { params, statements });
        }
    }
    functions
}

/// What a statement touches, and why it is not keyed.
#[derive(Debug, Default)]
struct Audit {
    distributed: BTreeSet<String>,
    reference: BTreeSet<String>,
    local: BTreeSet<String>,
    /// Empty when every distributed table it touches is keyed.
    unkeyed: Vec<String>,
    /// The row locks it takes and the writes it makes (`FOR UPDATE`,
    /// `INSERT`, ..), in any scope or a function of the migrations it calls.
    locks_or_writes: BTreeSet<String>,
    /// Whether the statement's own scope (not a subquery's) has a `LIMIT`.
    limited: bool,
}

/// The row locks and writes among `tokens` of a statement, as SQL words.
fn locks_and_writes(tokens: &[Sql]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Sql::Word(w) = token else { continue };
        let next = |k: usize, expected: &str| word(tokens.get(i + k), expected);
        if w == "for" {
            let lock = if next(1, "update") {
                "FOR UPDATE"
            } else if next(1, "no") && next(2, "key") && next(3, "update") {
                "FOR NO KEY UPDATE"
            } else if next(1, "share") {
                "FOR SHARE"
            } else if next(1, "key") && next(2, "share") {
                "FOR KEY SHARE"
            } else {
                continue;
            };
            found.push(lock.to_owned());
        } else if one_of("insert update delete merge", w) {
            // The UPDATE of a locking clause is not a write.
            let locking =
                i > 0 && (word(tokens.get(i - 1), "for") || word(tokens.get(i - 1), "key"));
            if !locking {
                found.push(w.to_uppercase());
            }
        }
    }
    found
}

/// Audits the SQL `text` (and the functions of the migrations it calls,
/// unless it is one's statement, `within` it) into `audit`.
fn audit_sql(
    text: &str,
    params: &[String],
    functions: &BTreeMap<String, Function>,
    audit: &mut Audit,
    within: &str,
) {
    let tokens = sql_tokens(text, params);
    let scopes = sql_scopes(&tokens);
    if within.is_empty() {
        audit.limited = scopes[0].iter().any(|t| word(Some(t), "limit"));
    }
    audit.locks_or_writes.extend(
        locks_and_writes(&tokens)
            .into_iter()
            .map(|found| format!("{within}{found}")),
    );
    for scope in scopes {
        audit_scope(&scope, audit, within);
    }
    for pair in tokens.windows(2) {
        let (Sql::Word(name), Sql::Open) = (&pair[0], &pair[1]) else {
            continue;
        };
        let Some(function) = functions.get(name).filter(|_| within.is_empty()) else {
            continue;
        };
        let within = format!("in {name}(): ");
        for statement in &function.statements {
            audit_sql(statement, &function.params, functions, audit, &within);
        }
    }
}

fn audit_scope(scope: &[Sql], audit: &mut Audit, within: &str) {
    let refs = table_refs(scope);
    for r in &refs {
        let set = match layout(&r.table) {
            Some(Distributed(_)) => &mut audit.distributed,
            Some(Reference) => &mut audit.reference,
            _ => &mut audit.local,
        };
        set.insert(r.table.clone());
    }
    let equalities = equalities(scope);
    // The distributed tables the scope reads or updates, with their key.
    let readers: Vec<(&TableRef, &str)> = refs
        .iter()
        .filter(|r| !r.insert)
        .filter_map(|r| Some((r, distribution_column(&r.table)?)))
        .collect();
    // The names a reader's key column goes by in this scope.
    let names = |r: &TableRef, key: &str| {
        let mut names = vec![format!("{}.{key}", r.table)];
        names.extend(r.alias.as_ref().map(|alias| format!("{alias}.{key}")));
        if readers.len() == 1 {
            names.push(key.to_owned());
        }
        names
    };
    let mut keyed: Vec<bool> = readers
        .iter()
        .map(|(r, key)| {
            let names = names(r, key);
            equalities
                .iter()
                .any(|(column, side)| names.contains(column) && *side == Side::Param)
        })
        .collect();
    // A join on the key column keys a reader when the other side is keyed: a
    // reader keyed by a parameter, or a row source that is not a table here
    // (a CTE, a subquery, `unnest` of parameters), audited in its own scope.
    let mut changed = true;
    while changed {
        changed = false;
        for (k, (r, key)) in readers.iter().enumerate() {
            let names = names(r, key);
            let joined = equalities.iter().any(|(column, side)| {
                let Side::Column(other) = side else {
                    return false;
                };
                other
                    .rsplit_once('.')
                    .is_some_and(|(qualifier, other_column)| {
                        names.contains(column)
                            && other_column == *key
                            && readers
                                .iter()
                                .position(|(o, _)| {
                                    o.alias.as_deref() == Some(qualifier) || o.table == qualifier
                                })
                                .is_none_or(|o| keyed[o])
                    })
            });
            if joined && !keyed[k] {
                keyed[k] = true;
                changed = true;
            }
        }
    }
    for ((r, key), keyed) in readers.iter().zip(keyed) {
        if !keyed {
            audit.unkeyed.push(format!(
                "{within}`{}` is read or written without `{key} = <parameter>` (or a join on \
                 {key} to keyed rows)",
                r.table
            ));
        }
    }
    for r in refs.iter().filter(|r| r.insert) {
        let Some(key) = distribution_column(&r.table) else {
            continue;
        };
        if !bracketed_words(scope, r.at + 1).iter().any(|c| c == key) {
            audit.unkeyed.push(format!(
                "{within}`INSERT INTO {}` does not write `{key}`",
                r.table
            ));
        }
        let conflict = scope
            .windows(2)
            .position(|pair| word(Some(&pair[0]), "on") && word(Some(&pair[1]), "conflict"));
        if let Some(at) = conflict.filter(|at| !word(scope.get(at + 2), "do")) {
            let target = bracketed_words(scope, at + 2);
            if !target.iter().any(|c| c == key) {
                audit.unkeyed.push(format!(
                    "{within}`ON CONFLICT ({})` on `{}` lacks `{key}`: a distributed table's \
                     unique indexes must include its distribution column",
                    target.join(", "),
                    r.table
                ));
            }
        }
    }
}

/// The index a constraint is made from: `USING INDEX index` at `at`.
fn using_index(element: &[Sql], at: usize) -> Option<String> {
    match (element.get(at), element.get(at + 1), element.get(at + 2)) {
        (Some(Sql::Word(using)), Some(Sql::Word(index)), Some(Sql::Word(name)))
            if using == "using" && index == "index" =>
        {
            Some(name.clone())
        }
        _ => None,
    }
}

/// The words of the bracketed list that starts at `open` (empty when there is none).
fn bracketed_words(scope: &[Sql], open: usize) -> Vec<String> {
    if scope.get(open) != Some(&Sql::Open) {
        return Vec::new();
    }
    scope[open + 1..]
        .iter()
        .take_while(|t| **t != Sql::Close)
        .filter_map(|t| match t {
            Sql::Word(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

/// The verdict on one statement: its label when it passes, else what to do.
fn verdict(audit: &Audit, class: Option<Class>) -> Result<&'static str, String> {
    let touches = |tables: &BTreeSet<String>| tables.iter().cloned().collect::<Vec<_>>().join(", ");
    let classify = |what: String, class: &str| {
        Err(format!(
            "{what}: classify it `Class::{class}` with the reason in CLASSIFIED"
        ))
    };
    match class {
        None if !audit.unkeyed.is_empty() => Err(format!(
            "a hot statement that is not keyed by its tables' distribution columns: {}. Key \
             it (add the distribution column to its conditions or its column list); if it is \
             off the request path, classify it `Class::Cold` with the reason in CLASSIFIED",
            audit.unkeyed.join("; ")
        )),
        None if !audit.local.is_empty() => classify(
            format!(
                "touches the coordinator-only table(s) {}",
                touches(&audit.local)
            ),
            "Cold",
        ),
        None if !audit.distributed.is_empty() => Ok("hot, keyed"),
        None if !audit.reference.is_empty() => classify(
            format!(
                "touches only reference tables ({})",
                touches(&audit.reference)
            ),
            "Reference",
        ),
        None => classify(
            "touches no table (LISTEN/NOTIFY, SET, a health check)".into(),
            "Cold",
        ),
        Some(Class::Reference(_)) if !audit.distributed.is_empty() || !audit.local.is_empty() => {
            Err(format!(
                "classified as a reference-table statement but touches {}",
                touches(&audit.distributed.union(&audit.local).cloned().collect())
            ))
        }
        Some(Class::Reference(_)) if audit.reference.is_empty() => {
            Err("classified as a reference-table statement but touches no table".into())
        }
        Some(Class::Reference(_)) => Ok("reference"),
        Some(Class::Cold(_)) => Ok("cold"),
        Some(Class::FanOut(_)) if audit.unkeyed.is_empty() => {
            Err("listed as a fan-out read, but it is keyed: delete its line from CLASSIFIED".into())
        }
        Some(Class::FanOut(_)) if !audit.locks_or_writes.is_empty() => Err(format!(
            "classified as a fan-out read but it locks or writes ({}): a statement that locks \
             or writes rows must name their shard; key it",
            audit
                .locks_or_writes
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(Class::FanOut(_)) if !audit.limited => Err(
            "classified as a fan-out read but it has no LIMIT of its own: every node would \
             answer with all its rows"
                .into(),
        ),
        Some(Class::FanOut(_)) => Ok("hot, fan-out read (no lock, bounded)"),
        Some(Class::Unkeyed(_)) if audit.unkeyed.is_empty() => Err(
            "listed as an unkeyed hot statement, but it is keyed now: delete its line from \
             CLASSIFIED"
                .into(),
        ),
        Some(Class::Unkeyed(_)) => Ok("hot, NOT keyed (open finding)"),
    }
}

fn pg_store() -> PathBuf {
    workspace_root().join("crates/session-store-pg")
}

/// The store's sources (path under `src/`, text), the test rig (`testing/`,
/// feature `testing`, never in the server's build) left out.
fn pg_store_sources() -> Vec<(String, String)> {
    let src = pg_store().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&src).ok()?.to_string_lossy();
            let relative = relative.replace('\\', "/");
            let text = std::fs::read_to_string(path).expect("read source");
            (!relative.starts_with("testing/")).then_some((relative, text))
        })
        .collect()
}

/// The migrations' SQL, in order.
fn pg_store_migrations() -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pg_store().join("migrations"))
        .expect("migrations directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    let read = |path: &PathBuf| std::fs::read_to_string(path).expect("read migration");
    files.iter().map(read).collect()
}

/// Every statement of the store: (file, statement, its audit), and what the
/// audit could not read.
fn audited_statements() -> (Vec<(String, Statement, Audit)>, Vec<String>) {
    let sources = pg_store_sources();
    let mut macros = BTreeMap::new();
    for (_, source) in &sources {
        macros.extend(macros_of(&rust_tokens(source)).0);
    }
    let functions = functions_of(&pg_store_migrations());
    let mut statements = Vec::new();
    let mut failures = Vec::new();
    let place = |file: &str, line: usize| format!("crates/session-store-pg/src/{file}:{line}");
    for (file, source) in &sources {
        let found = sql_of_source(file, source, &macros);
        for (line, text) in &found.unrecognised {
            failures.push(format!(
                "{}: `{}` reads like SQL but does not start with an SQL command in capitals: \
                 write the statement whole (a literal, `concat!`, a `format!` template) so the \
                 shard audit can read it",
                place(file, *line),
                abbreviated(text)
            ));
        }
        for (line, call) in &found.unseen_calls {
            failures.push(format!(
                "{}: `{call}` runs SQL the shard audit cannot see: pass a literal, a `const`, \
                 a `concat!` or `format!` the audit reads, or a statement prepared from one; \
                 or list the argument in SQL_ARGUMENTS with where its SQL is audited",
                place(file, *line)
            ));
        }
        for statement in found.statements {
            let mut audit = Audit::default();
            audit_sql(&statement.text, &[], &functions, &mut audit, "");
            if !statement.unread.is_empty() {
                failures.push(format!(
                    "{}: `{}`: the shard audit cannot read {:?}: use a macro of the crate \
                     whose body is a literal or `concat!`, or fill the placeholder in \
                     PLACEHOLDERS",
                    place(file, statement.line),
                    abbreviated(&statement.text),
                    statement.unread
                ));
            }
            statements.push((file.clone(), statement, audit));
        }
    }
    (statements, failures)
}

fn abbreviated(text: &str) -> String {
    match text.char_indices().nth(110) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The lines of [`CLASSIFIED`] that name `statement` of `file`: those whose
/// piece of text it has, else the file's `*` line.
fn classes_of(file: &str, statement: &str) -> Vec<usize> {
    let lines = |whole_file: bool| -> Vec<usize> {
        (0..CLASSIFIED.len())
            .filter(|&i| {
                let (f, piece, _) = CLASSIFIED[i];
                let names = piece
                    .strip_prefix('=')
                    .map_or_else(|| statement.contains(piece), |whole| statement == whole);
                f == file && (piece == "*") == whole_file && (whole_file || names)
            })
            .collect()
    };
    let named = lines(false);
    if named.is_empty() { lines(true) } else { named }
}

#[test]
fn hot_pg_statements_are_keyed_by_their_distribution_column() {
    let (statements, mut failures) = audited_statements();
    // The walk found the statements built every way the crate builds them.
    #[rustfmt::skip]
    let built = [
        ("batch.rs", "INSERT INTO transactions (merchant_transaction_id, partner_id,"),
        ("sessions.rs", "SELECT merchant_transaction_id, partner_id,"),
        ("partners/sql.rs", "FROM partner_webhook_secrets WHERE"),
        ("partners/sql.rs", "UPDATE client_tokens SET __column__ = $3"),
        ("webhooks.rs", "SELECT outbox_record_final("),
    ];
    for (file, piece) in built {
        assert!(
            statements
                .iter()
                .any(|(f, s, _)| f == file && s.text.contains(piece)),
            "the shard audit did not find `{piece}` in {file}"
        );
    }
    let mut used = vec![false; CLASSIFIED.len()];
    for (file, statement, audit) in &statements {
        let classes = classes_of(file, &statement.text);
        let place = format!("crates/session-store-pg/src/{file}:{}", statement.line);
        if classes.len() > 1 {
            failures.push(format!(
                "{place}: `{}` matches {} lines of CLASSIFIED: make their pieces of text tell \
                 statements apart",
                abbreviated(&statement.text),
                classes.len()
            ));
            continue;
        }
        for &i in &classes {
            used[i] = true;
        }
        let class = classes.first().map(|&i| CLASSIFIED[i].2);
        if let Err(why) = verdict(audit, class) {
            failures.push(format!(
                "{place}: `{}`: {why}",
                abbreviated(&statement.text)
            ));
        }
    }
    for ((file, piece, _), used) in CLASSIFIED.iter().zip(used) {
        if !used {
            failures.push(format!(
                "CLASSIFIED names `{piece}` in {file}, which matches no statement there: \
                 update or delete the line"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "shard-key audit of session-store-pg (see docs/ARCHITECTURE.md):\n{}",
        failures.join("\n")
    );
}
/// A foreign key of the schema.
#[derive(Debug)]
struct ForeignKey {
    /// The constraint's name: as the DDL gives it, else PostgreSQL's default.
    name: String,
    table: String,
    columns: Vec<String>,
    target: String,
    target_columns: Vec<String>,
}

/// The parts of the schema a distributed layout constrains.
#[derive(Debug, Default)]
struct Schema {
    /// Every table created, with its columns.
    columns: BTreeMap<String, BTreeSet<String>>,
    /// Primary keys, unique constraints and unique indexes, by their name
    /// (PostgreSQL's default unless the DDL names them): (name, table, columns).
    unique: Vec<(String, String, Vec<String>)>,
    foreign: Vec<ForeignKey>,
}

impl Schema {
    /// Reads the DDL in `texts` (migrations, and statements that create tables).
    fn of(texts: &[String]) -> Self {
        let mut schema = Self::default();
        for text in texts {
            let tokens = sql_tokens(text, &[]);
            for statement in tokens.split(|t| *t == Sql::Op(";".into())) {
                schema.read(statement);
            }
        }
        schema
    }

    fn read(&mut self, s: &[Sql]) {
        let mut i = 2;
        let skip = |i: &mut usize, words: &[&str]| {
            if words
                .iter()
                .enumerate()
                .all(|(k, w)| word(s.get(*i + k), w))
            {
                *i += words.len();
            }
        };
        if word(s.first(), "create") && word(s.get(1), "table") {
            skip(&mut i, &["if", "not", "exists"]);
            let Some(Sql::Word(table)) = s.get(i) else {
                return;
            };
            self.columns.entry(table.clone()).or_default();
            if s.get(i + 1) != Some(&Sql::Open) {
                return;
            }
            let end = (i + 1..s.len())
                .rev()
                .find(|&j| s[j] == Sql::Close)
                .unwrap_or(s.len());
            for element in sql_commas(&s[i + 2..end]) {
                self.element(table, element);
            }
        } else if word(s.first(), "alter") && word(s.get(1), "table") {
            skip(&mut i, &["if", "exists"]);
            skip(&mut i, &["only"]);
            let Some(Sql::Word(table)) = s.get(i) else {
                return;
            };
            for action in sql_commas(&s[i + 1..]) {
                if word(action.first(), "drop") && word(action.get(1), "constraint") {
                    let at = if word(action.get(2), "if") { 4 } else { 2 };
                    if let Some(Sql::Word(name)) = action.get(at) {
                        self.unique.retain(|(unique, ..)| unique != name);
                        self.foreign.retain(|fk| fk.name != *name);
                    }
                }
                if !word(action.first(), "add") {
                    continue;
                }
                // ADD [COLUMN [IF NOT EXISTS]] the element.
                let k = match (word(action.get(1), "column"), word(action.get(2), "if")) {
                    (true, true) => 5,
                    (true, false) => 2,
                    _ => 1,
                };
                self.element(table, &action[k.min(action.len())..]);
            }
        } else if word(s.first(), "drop") && word(s.get(1), "index") {
            skip(&mut i, &["concurrently"]);
            skip(&mut i, &["if", "exists"]);
            if let Some(Sql::Word(name)) = s.get(i) {
                self.unique.retain(|(unique, ..)| unique != name);
            }
        } else if word(s.first(), "create") && word(s.get(1), "unique") {
            let Some(on) = s.iter().position(|t| word(Some(t), "on")) else {
                return;
            };
            let name = match s.get(3) {
                Some(Sql::Word(name)) if on > 3 => name.clone(),
                _ => String::new(),
            };
            let at = on + 1 + usize::from(word(s.get(on + 1), "only"));
            let Some(Sql::Word(table)) = s.get(at) else {
                return;
            };
            let Some(open) = (at..s.len()).find(|&j| s[j] == Sql::Open) else {
                return;
            };
            let columns = bracketed_words(s, open);
            self.unique.push((name, table.clone(), columns));
        }
    }

    /// The columns of the unique index `index`, which a constraint takes
    /// over (with its own name): the index is no longer listed as itself.
    fn adopt(&mut self, index: &str) -> Vec<String> {
        match self.unique.iter().position(|(name, ..)| name == index) {
            Some(at) => self.unique.remove(at).2,
            None => Vec::new(),
        }
    }

    /// A column definition or a table constraint of `table`.
    fn element(&mut self, table: &str, element: &[Sql]) {
        let (name, element) = match element.get(1) {
            Some(Sql::Word(name)) if word(element.first(), "constraint") => {
                (Some(name.clone()), &element[2..])
            }
            _ => (None, element),
        };
        let references = element.iter().position(|t| word(Some(t), "references"));
        // Unique keys (columns, the name PostgreSQL gives them by default) and
        // foreign keys (columns) the element declares.
        let mut unique: Option<(Vec<String>, String)> = None;
        let mut foreign: Option<Vec<String>> = None;
        match element.first() {
            // `PRIMARY KEY USING INDEX index` and `UNIQUE USING INDEX index`
            // make a unique index the constraint: it keeps its columns and
            // takes the constraint's name (else the constraint takes its).
            Some(Sql::Word(w)) if w == "primary" => {
                unique = Some(match using_index(element, 2) {
                    Some(index) => (self.adopt(&index), index),
                    None => (bracketed_words(element, 2), format!("{table}_pkey")),
                });
            }
            Some(Sql::Word(w)) if w == "unique" => {
                unique = Some(match using_index(element, 1) {
                    Some(index) => (self.adopt(&index), index),
                    None => {
                        let columns = bracketed_words(element, 1);
                        let name = format!("{table}_{}_key", columns.join("_"));
                        (columns, name)
                    }
                });
            }
            Some(Sql::Word(w)) if w == "foreign" => foreign = Some(bracketed_words(element, 2)),
            Some(Sql::Word(w)) if w == "check" || w == "exclude" => {}
            Some(Sql::Word(column)) => {
                foreign = Some(vec![column.clone()]);
                let primary = element
                    .windows(2)
                    .any(|pair| word(Some(&pair[0]), "primary") && word(Some(&pair[1]), "key"));
                if primary {
                    unique = Some((vec![column.clone()], format!("{table}_pkey")));
                } else if element.iter().any(|t| word(Some(t), "unique")) {
                    unique = Some((vec![column.clone()], format!("{table}_{column}_key")));
                }
                self.columns
                    .entry(table.to_owned())
                    .or_default()
                    .insert(column.clone());
            }
            _ => {}
        }
        if let Some((columns, default)) = unique {
            let name = name.clone().unwrap_or(default);
            self.unique.push((name, table.to_owned(), columns));
        }
        if let (Some(columns), Some(at)) = (foreign, references) {
            let target = match element.get(at + 1) {
                Some(Sql::Word(target)) => target.clone(),
                _ => String::new(),
            };
            let default = format!("{table}_{}_fkey", columns.join("_"));
            self.foreign.push(ForeignKey {
                name: name.unwrap_or(default),
                table: table.to_owned(),
                columns,
                target,
                target_columns: bracketed_words(element, at + 2),
            });
        }
    }

    /// What a distributed layout of the schema forbids: unique keys of a
    /// distributed table without its distribution column, and foreign keys
    /// between tables that are not co-located on the key.
    fn issues(&self) -> Vec<String> {
        let mut issues = Vec::new();
        for (_, table, columns) in &self.unique {
            if let Some(key) = distribution_column(table) {
                if !columns.iter().any(|c| c == key) {
                    issues.push(format!(
                        "{table}: unique ({}) lacks {key}",
                        columns.join(", ")
                    ));
                }
            }
        }
        for fk in &self.foreign {
            let from = layout(&fk.table);
            let to = layout(&fk.target);
            let columns = fk.columns.join(", ");
            match (from, to) {
                (Some(Distributed(a)), Some(Distributed(b))) => {
                    let target_columns = if fk.target_columns.is_empty() {
                        &fk.columns
                    } else {
                        &fk.target_columns
                    };
                    let at = fk.columns.iter().position(|c| c == a);
                    let colocated =
                        a == b && at.is_some() && at == target_columns.iter().position(|c| c == b);
                    if !colocated {
                        issues.push(format!(
                            "{}: foreign key ({columns}) to {} crosses co-location groups",
                            fk.table, fk.target
                        ));
                    }
                }
                (Some(Reference | Local), Some(Distributed(_))) => issues.push(format!(
                    "{}: foreign key ({columns}) to the distributed table {}",
                    fk.table, fk.target
                )),
                _ => {}
            }
        }
        issues
    }
}

/// The schema: the migrations, and the statements of the sources that create
/// or alter tables (`migrate.rs` creates its own).
fn pg_schema() -> Schema {
    let mut texts = pg_store_migrations();
    for (file, source) in &pg_store_sources() {
        let found = sql_of_source(file, source, &BTreeMap::new());
        texts.extend(
            found
                .statements
                .into_iter()
                .map(|s| s.text)
                .filter(|text| text.starts_with("CREATE") || text.starts_with("ALTER")),
        );
    }
    Schema::of(&texts)
}

#[test]
fn every_pg_table_has_a_layout_that_its_keys_fit() {
    let schema = pg_schema();
    let mut failures = Vec::new();
    for table in schema.columns.keys() {
        if layout(table).is_none() {
            failures.push(format!(
                "table {table} has no layout in TABLES: decide whether it is distributed (by \
                 partner_id or merchant_transaction_id), a reference table or local"
            ));
        }
    }
    for (table, layout, _) in TABLES {
        match (schema.columns.get(*table), layout) {
            (None, _) => failures.push(format!(
                "TABLES lists {table}, which no migration creates: delete its line"
            )),
            (Some(columns), Distributed(key)) if !columns.contains(*key) => failures.push(format!(
                "TABLES distributes {table} by {key}, a column it does not have"
            )),
            _ => {}
        }
    }
    let issues = schema.issues();
    for issue in &issues {
        if !SCHEMA_FINDINGS.iter().any(|(known, _)| known == issue) {
            failures.push(format!(
                "{issue}: a distributed table's unique keys must include its distribution \
                 column, and its foreign keys must stay within its co-location group (or point \
                 at a reference table); change the schema or the layout in TABLES"
            ));
        }
    }
    for (known, _) in SCHEMA_FINDINGS {
        if !issues.iter().any(|issue| issue == known) {
            failures.push(format!(
                "SCHEMA_FINDINGS lists `{known}`, which the schema no longer has: delete the line"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "shard layout of session-store-pg's tables (see docs/ARCHITECTURE.md):\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_shard_audit_reads_rust_sql_and_fails_an_unkeyed_hot_statement() {
    let source = r####"//! UPDATE outbox SET state = 'x' WHERE id = $1 (a doc comment, not SQL)
macro_rules! columns { () => { "id, event" }; }
macro_rules! from { ($table:literal) => { concat!(" FROM ", $table) }; }
const BY_ID: &'static str = "UPDATE outbox SET attempts = attempts + 1 \
                     WHERE id = $1";
/// DELETE FROM outbox WHERE id = $1, in a doc comment: not SQL.
fn f(client: &Client) {
    let _ = ('"', '\'', "not SQL: \" '");
    client.prepare_cached(concat!("SELECT ", columns!(), from!("outbox"),
        " WHERE merchant_transaction_id = $1"));
    let statement = client.prepare_cached(BY_ID);
    client.execute(&statement, &[]);
    client.batch_execute(r#"DELETE FROM outbox WHERE merchant_transaction_id = ANY($1)"#);
    client.execute(&format!("UPDATE outbox SET {column} = 1"), &[]);
    client.query(built_elsewhere, &[]);
    let fragment = "select 1 from outbox";
    tracing::warn!(%error, "NOTIFY session_outbox not sent; other instances will poll");
}
#[cfg(test)]
mod tests { const IGNORED: &str = "SELECT 2"; }
"####;
    let tokens = rust_tokens(source);
    let (macros, _) = macros_of(&tokens);
    let found = sql_of_source("synthetic.rs", source, &macros);
    let texts: Vec<(&str, usize)> = found
        .statements
        .iter()
        .map(|s| (s.text.as_str(), s.line))
        .collect();
    #[rustfmt::skip]
    let expected = [
        ("UPDATE outbox SET attempts = attempts + 1 WHERE id = $1", 4),
        ("SELECT id, event FROM outbox WHERE merchant_transaction_id = $1", 9),
        ("DELETE FROM outbox WHERE merchant_transaction_id = ANY($1)", 13),
        ("UPDATE outbox SET ⟨column⟩ = 1", 14),
    ];
    assert_eq!(texts, expected);
    assert_eq!(found.statements[3].unread, ["{column}"]);
    let unrecognised = [(16, "select 1 from outbox".to_owned())];
    assert_eq!(found.unrecognised, unrecognised);
    let unseen = [(15, ".query(built_elsewhere, ..)".to_owned())];
    assert_eq!(found.unseen_calls, unseen);

    let functions = functions_of(&[
        "CREATE FUNCTION mark(p_id bigint, p_tx uuid) RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n    UPDATE outbox SET state = 'x' WHERE id = p_id;\nEND\n$$;"
            .into(),
    ]);
    let audit = |sql: &str| {
        let mut audit = Audit::default();
        audit_sql(sql, &[], &functions, &mut audit, "");
        audit
    };
    for keyed in [
        "SELECT event FROM outbox WHERE merchant_transaction_id = $1 ORDER BY id",
        "SELECT 1 FROM outbox o WHERE o.merchant_transaction_id = ANY($1) AND o.id = $2",
        "SELECT 1 FROM outbox WHERE merchant_transaction_id IN ($1, $2)",
        "SELECT 1 FROM outbox WHERE $1::uuid = merchant_transaction_id",
        "WITH r AS (UPDATE outbox SET attempts = 1 WHERE merchant_transaction_id = $1::uuid \
         RETURNING merchant_transaction_id) SELECT count(*) FROM outbox e, r \
         WHERE e.merchant_transaction_id = r.merchant_transaction_id",
        "SELECT t.status FROM transactions t JOIN outbox o \
         ON o.merchant_transaction_id = t.merchant_transaction_id \
         WHERE t.merchant_transaction_id = $1",
        "UPDATE end_users SET email = b.email FROM unnest($1::text[], $2::text[]) \
         AS b (partner_id, email) WHERE end_users.partner_id = b.partner_id",
        "INSERT INTO provider_events (event_id, merchant_transaction_id) VALUES ($1, $2) \
         ON CONFLICT (merchant_transaction_id, event_id) DO NOTHING",
    ] {
        let audit = audit(keyed);
        assert!(audit.unkeyed.is_empty(), "{keyed}: {:?}", audit.unkeyed);
        assert_eq!(verdict(&audit, None), Ok("hot, keyed"), "{keyed}");
    }
    #[rustfmt::skip]
    let unkeyed = [
        ("UPDATE outbox SET attempts = attempts + 1 WHERE id = $1", 1),
        // SET is not a condition.
        ("UPDATE outbox SET merchant_transaction_id = $2 WHERE id = $1", 1),
        // Neither is an equality under OR.
        ("SELECT 1 FROM outbox WHERE id = $2 OR merchant_transaction_id = $1", 1),
        ("SELECT 1 FROM outbox WHERE ($1::uuid IS NULL OR merchant_transaction_id = $1)", 1),
        // Nor one with a subquery, whose own table is unkeyed too.
        ("SELECT 1 FROM transactions WHERE merchant_transaction_id = \
          (SELECT merchant_transaction_id FROM outbox WHERE id = $1)", 2),
        // Two tables joined on the key, neither keyed.
        ("SELECT t.status FROM transactions t JOIN outbox o \
          ON o.merchant_transaction_id = t.merchant_transaction_id", 2),
        ("SELECT kyc_status FROM end_users WHERE partner_user_id = $1", 1),
        ("INSERT INTO outbox (partner_id, event) VALUES ($1, $2)", 1),
        ("INSERT INTO provider_events (event_id, merchant_transaction_id) VALUES ($1, $2) \
          ON CONFLICT (event_id) DO NOTHING", 1),
        // Through a function of the migrations.
        ("SELECT mark($1, $2)", 1),
    ];
    for (unkeyed, reasons) in unkeyed {
        let audit = audit(unkeyed);
        let found = audit.unkeyed.len();
        assert_eq!(found, reasons, "{unkeyed}: {:?}", audit.unkeyed);
        let refused = verdict(&audit, None).expect_err(unkeyed);
        assert!(refused.contains("not keyed"), "{refused}");
        assert!(verdict(&audit, Some(Class::Unkeyed("known"))).is_ok());
        assert!(verdict(&audit, Some(Class::Cold("off the request path"))).is_ok());
        assert!(verdict(&audit, Some(Class::Reference("config"))).is_err());
    }
    let keyed = audit("SELECT 1 FROM outbox WHERE merchant_transaction_id = $1");
    assert!(
        verdict(&keyed, Some(Class::Unkeyed("fixed since")))
            .is_err_and(|why| why.contains("keyed now"))
    );
    let reference = audit("SELECT id FROM partners p JOIN partner_ips i ON i.partner_id = p.id");
    let touched = (reference.reference.len(), reference.distributed.len());
    assert_eq!(touched, (2, 0));
    assert!(verdict(&reference, None).is_err_and(|why| why.contains("Class::Reference")));
    assert_eq!(
        verdict(&reference, Some(Class::Reference("config"))),
        Ok("reference")
    );
    let no_table = audit("SELECT pg_notify($1, '')");
    assert!(verdict(&no_table, None).is_err_and(|why| why.contains("Class::Cold")));
    let local = audit("SELECT version FROM schema_migrations");
    assert!(verdict(&local, None).is_err());
    assert_eq!(verdict(&local, Some(Class::Cold("migrations"))), Ok("cold"));

    let schema = Schema::of(&[
        "CREATE TABLE outbox (id bigserial PRIMARY KEY, merchant_transaction_id uuid NOT NULL);\n\
         CREATE UNIQUE INDEX outbox_tx ON outbox (merchant_transaction_id, id);\n\
         ALTER TABLE outbox ADD COLUMN partner_id text REFERENCES partners (id), \
             ADD CONSTRAINT one UNIQUE (partner_id);\n\
         CREATE TABLE transactions (merchant_transaction_id uuid PRIMARY KEY, partner_id text,\n\
             partner_user_id text, FOREIGN KEY (partner_id, partner_user_id)\n\
             REFERENCES end_users (partner_id, partner_user_id));\n\
         CREATE TABLE provider_events (event_id text PRIMARY KEY, merchant_transaction_id uuid);\n\
         ALTER TABLE provider_events DROP CONSTRAINT provider_events_pkey,\n\
             ADD PRIMARY KEY (merchant_transaction_id, event_id);\n\
         CREATE UNIQUE INDEX by_email ON end_users (email); DROP INDEX IF EXISTS by_email;"
            .to_owned(),
    ]);
    assert_eq!(
        schema.issues(),
        [
            "outbox: unique (id) lacks merchant_transaction_id",
            "outbox: unique (partner_id) lacks merchant_transaction_id",
            "transactions: foreign key (partner_id, partner_user_id) to end_users crosses \
             co-location groups",
        ]
    );
    assert!(schema.columns["outbox"].contains("partner_id"));

    // A line of CLASSIFIED names a statement before its file's `*` line does.
    let line = |file: &str, statement: &str| {
        let lines = classes_of(file, statement);
        lines.iter().map(|&i| CLASSIFIED[i].1).collect::<Vec<_>>()
    };
    assert_eq!(
        line("partners/sql.rs", "SELECT pg_notify($1, $2)"),
        ["=SELECT pg_notify($1, $2)"]
    );
    assert_eq!(line("partners/sql.rs", "INSERT INTO client_tokens"), ["*"]);
    assert_eq!(line("lib.rs", "SELECT 2"), Vec::<&str>::new());
}

#[test]
fn a_fan_out_read_takes_no_lock_writes_nothing_and_is_bounded() {
    let functions = functions_of(&[
        "CREATE FUNCTION mark(p_id bigint) RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n    UPDATE outbox SET state = 'x' WHERE id = p_id;\nEND\n$$;\n\
         CREATE FUNCTION peek(p_id bigint) RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n    PERFORM 1 FROM outbox WHERE id = p_id FOR SHARE;\nEND\n$$;"
            .into(),
    ]);
    let audit = |sql: &str| {
        let mut audit = Audit::default();
        audit_sql(sql, &[], &functions, &mut audit, "");
        audit
    };
    let fan_out = Some(Class::FanOut("found on every node"));
    let read = "SELECT merchant_transaction_id, id FROM outbox \
                WHERE state = 'pending' AND next_attempt_at <= $1 \
                ORDER BY next_attempt_at, id LIMIT $2";
    let found = audit(read);
    assert!(!found.unkeyed.is_empty(), "{read}: names no shard");
    assert!(found.locks_or_writes.is_empty(), "{read}");
    assert_eq!(
        verdict(&found, fan_out),
        Ok("hot, fan-out read (no lock, bounded)")
    );
    // The same read unclassified is an unkeyed hot statement.
    assert!(verdict(&found, None).is_err_and(|why| why.contains("not keyed")));

    #[rustfmt::skip]
    let refused = [
        (format!("{read} FOR UPDATE SKIP LOCKED"), "FOR UPDATE"),
        (format!("{read} FOR UPDATE OF outbox"), "FOR UPDATE"),
        (format!("{read} FOR NO KEY UPDATE"), "FOR NO KEY UPDATE"),
        (format!("{read} FOR SHARE"), "FOR SHARE"),
        (format!("{read} FOR KEY SHARE SKIP LOCKED"), "FOR KEY SHARE"),
        // A lock in a subquery or a CTE locks all the same.
        ("WITH c AS (SELECT id FROM outbox WHERE state = 'pending' LIMIT $1 \
          FOR UPDATE SKIP LOCKED) SELECT id FROM c ORDER BY id LIMIT $1".into(), "FOR UPDATE"),
        ("UPDATE outbox SET attempts = 0 WHERE state = 'pending'".into(), "UPDATE"),
        ("DELETE FROM outbox WHERE state = 'delivered'".into(), "DELETE"),
        ("INSERT INTO outbox (partner_id, event) SELECT partner_id, event FROM outbox \
          WHERE state = 'failed' LIMIT $1".into(), "INSERT"),
        ("WITH gone AS (DELETE FROM outbox WHERE state = 'failed' RETURNING id) \
          SELECT id FROM gone ORDER BY id LIMIT $1".into(), "DELETE"),
        ("MERGE INTO outbox o USING outbox p ON o.id = p.id \
          WHEN MATCHED THEN UPDATE SET attempts = 0".into(), "MERGE"),
        // Through a function of the migrations.
        ("SELECT mark(id) FROM outbox WHERE state = 'failed' LIMIT $1".into(), "UPDATE"),
        ("SELECT peek(id) FROM outbox WHERE state = 'failed' LIMIT $1".into(), "FOR SHARE"),
    ];
    for (statement, lock) in refused {
        let found = audit(&statement);
        assert!(
            found.locks_or_writes.iter().any(|l| l.ends_with(lock)),
            "{statement}: {:?}",
            found.locks_or_writes
        );
        let why = verdict(&found, fan_out).expect_err(&statement);
        assert!(
            why.contains("locks or writes") && why.contains(lock),
            "{why}"
        );
    }

    // Unbounded: every node would answer with all its rows.
    let unbounded = audit("SELECT id FROM outbox WHERE state = 'pending' ORDER BY id");
    assert!(verdict(&unbounded, fan_out).is_err_and(|why| why.contains("no LIMIT")));
    let inner = audit(
        "SELECT o.id FROM outbox o WHERE o.id IN \
         (SELECT id FROM outbox WHERE state = 'pending' LIMIT $1)",
    );
    assert!(
        !inner.limited,
        "a subquery's LIMIT does not bound the statement"
    );
    // A keyed read needs no class at all.
    let keyed = audit("SELECT id FROM outbox WHERE merchant_transaction_id = $1 LIMIT $2");
    assert!(verdict(&keyed, fan_out).is_err_and(|why| why.contains("it is keyed")));
}

#[test]
fn the_schema_check_follows_keys_made_from_indexes_and_dropped_foreign_keys() {
    let schema = Schema::of(&[
        "CREATE TABLE end_users (partner_id text, partner_user_id text, \
             PRIMARY KEY (partner_id, partner_user_id));\n\
         CREATE TABLE transactions (merchant_transaction_id uuid PRIMARY KEY, partner_id text,\n\
             partner_user_id text, FOREIGN KEY (partner_id, partner_user_id)\n\
             REFERENCES end_users (partner_id, partner_user_id));\n\
         CREATE TABLE outbox (id bigserial PRIMARY KEY, merchant_transaction_id uuid,\n\
             partner_id text REFERENCES partners (id));\n\
         CREATE TABLE provider_events (event_id text, merchant_transaction_id uuid,\n\
             CONSTRAINT seen FOREIGN KEY (merchant_transaction_id) REFERENCES outbox);"
            .to_owned(),
    ]);
    assert_eq!(
        schema.issues(),
        [
            "outbox: unique (id) lacks merchant_transaction_id",
            "transactions: foreign key (partner_id, partner_user_id) to end_users crosses \
             co-location groups",
        ]
    );
    let names: Vec<&str> = schema.foreign.iter().map(|fk| fk.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "transactions_partner_id_partner_user_id_fkey",
            "outbox_partner_id_fkey",
            "seen"
        ],
        "PostgreSQL's default names, or the DDL's"
    );

    let migrated = Schema::of(&[
        "CREATE TABLE end_users (partner_id text, partner_user_id text, \
             PRIMARY KEY (partner_id, partner_user_id));\n\
         CREATE TABLE transactions (merchant_transaction_id uuid PRIMARY KEY, partner_id text,\n\
             partner_user_id text, FOREIGN KEY (partner_id, partner_user_id)\n\
             REFERENCES end_users (partner_id, partner_user_id));\n\
         CREATE TABLE outbox (id bigserial PRIMARY KEY, merchant_transaction_id uuid);\n\
         CREATE UNIQUE INDEX outbox_key ON outbox (merchant_transaction_id, id);\n\
         ALTER TABLE outbox DROP CONSTRAINT outbox_pkey,\n\
             ADD CONSTRAINT outbox_pkey PRIMARY KEY USING INDEX outbox_key;\n\
         CREATE UNIQUE INDEX by_id ON outbox (id);\n\
         ALTER TABLE outbox ADD UNIQUE USING INDEX by_id;\n\
         ALTER TABLE transactions DROP CONSTRAINT transactions_partner_id_partner_user_id_fkey;"
            .to_owned(),
    ]);
    assert_eq!(
        migrated.issues(),
        ["outbox: unique (id) lacks merchant_transaction_id"],
        "the adopted index keeps its columns; the dropped foreign key is gone"
    );
    let outbox: Vec<(&str, Vec<String>)> = migrated
        .unique
        .iter()
        .filter(|(_, table, _)| table == "outbox")
        .map(|(name, _, columns)| (name.as_str(), columns.clone()))
        .collect();
    assert_eq!(
        outbox,
        [
            (
                "outbox_pkey",
                vec!["merchant_transaction_id".into(), "id".into()]
            ),
            ("by_id", vec!["id".into()]),
        ]
    );
    assert!(migrated.foreign.is_empty());
}
