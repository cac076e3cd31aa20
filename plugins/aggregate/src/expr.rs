//! The measure expressions of `aggregate`: column names (dotted paths allowed),
//! numbers, `+ - * /` and parentheses, e.g. `quantity * unit_price`. An
//! expression is integer when every column is an integer and it has no `/`
//! or decimal literal; otherwise it is evaluated in 64-bit floats. A null
//! operand makes the row's value null, as in SQL.

use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::prelude::*;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column (or `a.b` nested field).
    Column(String),
    /// An integer literal (written without `.` or exponent), exactly.
    Integer(i64),
    /// Any other number literal.
    Float(f64),
    /// A binary operation.
    Binary(Box<Expr>, char, Box<Expr>),
    /// Unary minus.
    Negate(Box<Expr>),
}

/// Values of an expression over a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Integer values.
    Int(Vec<Option<i64>>),
    /// Float values.
    Float(Vec<Option<f64>>),
}

/// Parses `text`; the error says where it stops making sense.
pub fn parse(text: &str) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.sum()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(token) => Err(format!("unexpected `{token}` in `{text}`")),
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if "+-*/()".contains(c) {
            tokens.push(c.to_string());
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    end = i + c.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(text[start..end].to_string());
        } else {
            return Err(format!("unexpected character `{c}` in `{text}`"));
        }
    }
    if tokens.is_empty() {
        return Err("the expression is empty".into());
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek() {
            let op = op.chars().next().unwrap_or('+');
            self.at += 1;
            left = Expr::Binary(Box::new(left), op, Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(op @ ("*" | "/")) = self.peek() {
            let op = op.chars().next().unwrap_or('*');
            self.at += 1;
            left = Expr::Binary(Box::new(left), op, Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some("-") => {
                self.at += 1;
                Ok(Expr::Negate(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.at += 1;
                let inner = self.sum()?;
                if self.peek() != Some(")") {
                    return Err("a `(` is not closed".into());
                }
                self.at += 1;
                Ok(inner)
            }
            Some(token) if token.starts_with(|c: char| c.is_ascii_digit()) => {
                let literal = if token.contains(['.', 'e', 'E']) {
                    Expr::Float(
                        token
                            .parse()
                            .map_err(|_| format!("`{token}` is not a number"))?,
                    )
                } else {
                    Expr::Integer(
                        token
                            .parse()
                            .map_err(|_| format!("`{token}` is not a 64-bit integer"))?,
                    )
                };
                self.at += 1;
                Ok(literal)
            }
            Some(token) if !"+-*/)".contains(token) => {
                let name = token.to_string();
                self.at += 1;
                Ok(Expr::Column(name))
            }
            Some(token) => Err(format!("expected a column, number or `(`, found `{token}`")),
            None => Err("the expression ends too early".into()),
        }
    }
}

impl Expr {
    /// The error for an integer result beyond 64 bits at `row`.
    fn overflow(&self, row: usize) -> PluginError {
        let mut error =
            PluginError::bad_input("in", format!("integer overflow computing `{self}`"));
        error.row = Some(row as u64);
        error
    }

    /// Evaluates over `input`; errors name the column or the overflowing row.
    pub fn evaluate(&self, input: &Input<'_>) -> Result<Values, PluginError> {
        let rows = input.num_rows();
        match self {
            Expr::Integer(value) => Ok(Values::Int(vec![Some(*value); rows])),
            Expr::Float(value) => Ok(Values::Float(vec![Some(*value); rows])),
            Expr::Column(name) => column_values(input, name),
            Expr::Negate(inner) => Ok(match inner.evaluate(input)? {
                Values::Int(v) => Values::Int(
                    v.into_iter()
                        .enumerate()
                        .map(|(row, x)| match x {
                            Some(x) => x.checked_neg().map(Some).ok_or_else(|| self.overflow(row)),
                            None => Ok(None),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Values::Float(v) => Values::Float(v.into_iter().map(|x| x.map(|x| -x)).collect()),
            }),
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.evaluate(input)?, b.evaluate(input)?);
                match (a, b, *op) {
                    (Values::Int(a), Values::Int(b), op) if op != '/' => {
                        let mut out = Vec::with_capacity(rows);
                        for (row, (x, y)) in a.into_iter().zip(b).enumerate() {
                            out.push(match (x, y) {
                                (Some(x), Some(y)) => Some(
                                    match op {
                                        '+' => x.checked_add(y),
                                        '-' => x.checked_sub(y),
                                        _ => x.checked_mul(y),
                                    }
                                    .ok_or_else(|| self.overflow(row))?,
                                ),
                                _ => None,
                            });
                        }
                        Ok(Values::Int(out))
                    }
                    (a, b, op) => {
                        let (a, b) = (a.into_floats(), b.into_floats());
                        let out = a
                            .into_iter()
                            .zip(b)
                            .map(|(x, y)| match (x, y) {
                                (Some(x), Some(y)) => Some(match op {
                                    '+' => x + y,
                                    '-' => x - y,
                                    '*' => x * y,
                                    _ => x / y,
                                }),
                                _ => None,
                            })
                            .collect();
                        Ok(Values::Float(out))
                    }
                }
            }
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Column(name) => write!(f, "{name}"),
            Expr::Integer(value) => write!(f, "{value}"),
            Expr::Float(value) => write!(f, "{value:?}"),
            Expr::Binary(a, op, b) => write!(f, "({a} {op} {b})"),
            Expr::Negate(a) => write!(f, "-{a}"),
        }
    }
}

impl Values {
    fn into_floats(self) -> Vec<Option<f64>> {
        match self {
            Values::Int(v) => v.into_iter().map(|x| x.map(|x| x as f64)).collect(),
            Values::Float(v) => v,
        }
    }
}

fn column_values(input: &Input<'_>, name: &str) -> Result<Values, PluginError> {
    let array = if name.contains('.') {
        input.column_path(name)?
    } else {
        input.column_any(name)?.clone()
    };
    let values = match array.data_type() {
        DataType::Int8 => Values::Int(
            array
                .as_primitive::<Int8Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::Int16 => Values::Int(
            array
                .as_primitive::<Int16Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::Int32 => Values::Int(
            array
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::Int64 => Values::Int(array.as_primitive::<Int64Type>().iter().collect()),
        DataType::UInt8 => Values::Int(
            array
                .as_primitive::<UInt8Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::UInt16 => Values::Int(
            array
                .as_primitive::<UInt16Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::UInt32 => Values::Int(
            array
                .as_primitive::<UInt32Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::Float32 => Values::Float(
            array
                .as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.map(f64::from))
                .collect(),
        ),
        DataType::Float64 => Values::Float(array.as_primitive::<Float64Type>().iter().collect()),
        other => {
            return Err(PluginError::bad_input(
                "in",
                format!("column `{name}` is {other}; measures need a numeric column"),
            ));
        }
    };
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_precedence_and_parentheses() {
        assert_eq!(
            parse("quantity * unit_price").unwrap().to_string(),
            "(quantity * unit_price)"
        );
        assert_eq!(parse("a + b * 2").unwrap().to_string(), "(a + (b * 2))");
        assert_eq!(parse("(a + b) * -c").unwrap().to_string(), "((a + b) * -c)");
        assert_eq!(
            parse("customer.age").unwrap(),
            Expr::Column("customer.age".into())
        );
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("a *").unwrap_err().contains("ends too early"));
        assert!(parse("(a + b").unwrap_err().contains("not closed"));
        assert!(parse("a b").unwrap_err().contains("unexpected `b`"));
        assert!(
            parse("a % b")
                .unwrap_err()
                .contains("unexpected character `%`")
        );
    }
}
