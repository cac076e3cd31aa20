//! Which value of a record fills which declared field: by position in
//! declared order (`header = false`), or by name through the header of each
//! file (`header = true`), where columns may come in any order, undeclared
//! columns are ignored and an optional field the header lacks is null.

use weir_sdk::fields::FieldSpec;
use weir_sdk::key::same_bytes;

/// How the values of a file's records map to the declared fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The column names, in record order: every record has this many values.
    pub names: Vec<String>,
    /// For each column, the declared field it fills (`None`: ignored).
    pub targets: Vec<Option<usize>>,
    /// The declared (optional) fields no column fills: null in every row.
    pub absent: Vec<usize>,
    /// Whether the names come from a header (for reasons).
    pub from_header: bool,
}

/// Why the rows of a file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required field has no column.
    #[error("required field `{field}` is missing from the header{}", of_file(.file))]
    Missing {
        /// The field.
        field: String,
        /// The file, when the input names it.
        file: Option<String>,
    },
    /// Two columns have a declared field's name.
    #[error("column `{field}` appears twice in the header{}", of_file(.file))]
    Repeated {
        /// The field.
        field: String,
        /// The file, when the input names it.
        file: Option<String>,
    },
    /// The header itself was rejected.
    #[error("the header{} was rejected: {reason}", of_file(.file))]
    Rejected {
        /// Why (the header row's own reason).
        reason: String,
        /// The file, when the input names it.
        file: Option<String>,
    },
    /// No header came before the row.
    #[error("no header: line 1{} is not in the batch before this row", of_file(.file))]
    NotSeen {
        /// The file, when the input names it.
        file: Option<String>,
    },
}

impl HeaderError {
    /// The field to blame, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            HeaderError::Missing { field, .. } | HeaderError::Repeated { field, .. } => Some(field),
            HeaderError::Rejected { .. } | HeaderError::NotSeen { .. } => None,
        }
    }
}

/// ` of file `name`` when the file is known.
fn of_file(file: &Option<String>) -> String {
    file.as_ref()
        .map_or_else(String::new, |file| format!(" of file `{file}`"))
}

impl Layout {
    /// Every declared field, by position.
    pub fn positional(fields: &[FieldSpec]) -> Self {
        Layout {
            names: fields.iter().map(|field| field.name.clone()).collect(),
            targets: (0..fields.len()).map(Some).collect(),
            absent: Vec::new(),
            from_header: false,
        }
    }

    /// The declared fields matched by name to the columns of a header.
    pub fn from_header(
        names: Vec<String>,
        fields: &[FieldSpec],
        file: Option<&str>,
    ) -> Result<Self, HeaderError> {
        let mut targets = vec![None; names.len()];
        let mut absent = Vec::new();
        for (index, field) in fields.iter().enumerate() {
            let mut columns = names
                .iter()
                .enumerate()
                .filter(|(_, name)| same_bytes(name.as_bytes(), field.name.as_bytes()))
                .map(|(column, _)| column);
            match (columns.next(), columns.next()) {
                (Some(column), None) => targets[column] = Some(index),
                (Some(_), Some(_)) => {
                    return Err(HeaderError::Repeated {
                        field: field.name.clone(),
                        file: file.map(str::to_string),
                    });
                }
                (None, _) if field.required => {
                    return Err(HeaderError::Missing {
                        field: field.name.clone(),
                        file: file.map(str::to_string),
                    });
                }
                (None, _) => absent.push(index),
            }
        }
        Ok(Layout {
            names,
            targets,
            absent,
            from_header: true,
        })
    }

    /// How reasons name column `column` (0-based): its position and name.
    pub fn label(&self, column: usize) -> String {
        match self.names.get(column) {
            Some(name) => format!("column {} (`{name}`)", column + 1),
            None => format!("column {}", column + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::fields::ValueType;

    fn fields() -> Vec<FieldSpec> {
        vec![
            FieldSpec::new("id".into(), ValueType::Int64, true),
            FieldSpec::new("name".into(), ValueType::String, false),
            FieldSpec::new("note".into(), ValueType::String, false),
        ]
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn columns_are_matched_by_name_in_any_order() {
        let layout =
            Layout::from_header(names(&["extra", "name", "id"]), &fields(), Some("a.csv")).unwrap();
        assert_eq!(layout.targets, [None, Some(1), Some(0)]);
        assert_eq!(layout.absent, [2]);
        assert_eq!(layout.label(2), "column 3 (`id`)");
    }

    #[test]
    fn a_required_field_must_have_exactly_one_column() {
        let err = Layout::from_header(names(&["name"]), &fields(), Some("a.csv")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "required field `id` is missing from the header of file `a.csv`"
        );
        assert_eq!(err.field(), Some("id"));
        let err = Layout::from_header(names(&["id", "name", "name"]), &fields(), None).unwrap_err();
        assert_eq!(err.to_string(), "column `name` appears twice in the header");
    }
}
