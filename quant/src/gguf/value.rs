//! GGUF metadata values: the 13 value types and their in-memory form.
//!
//! Arrays are typed vectors ([`Array`]), not `Vec<Value>`, so a 32000-entry vocabulary is one
//! `Vec<String>` and a score table one `Vec<f32>`.

use std::fmt;

/// Deepest nesting of arrays the reader accepts and the writer produces (an array of scalars
/// has depth 1, an array of such arrays depth 2...).
pub const MAX_ARRAY_DEPTH: usize = 8;

macro_rules! value_types {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal; )*) => {
        /// A GGUF metadata value type with the numeric id GGUF stores.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ValueType {
            $( $(#[$doc])* $variant = $id, )*
        }

        impl ValueType {
            /// Every value type, in id order.
            pub const ALL: &'static [ValueType] = &[$(ValueType::$variant),*];

            /// The type with GGUF id `id`.
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $( $id => Some(ValueType::$variant), )*
                    _ => None,
                }
            }

            /// Short name used in error messages (`"u32"`, `"string"`...).
            pub fn name(self) -> &'static str {
                match self { $( ValueType::$variant => $name, )* }
            }
        }
    };
}

value_types! {
    /// `uint8`.
    U8 = 0, "u8";
    /// `int8`.
    I8 = 1, "i8";
    /// `uint16`.
    U16 = 2, "u16";
    /// `int16`.
    I16 = 3, "i16";
    /// `uint32`.
    U32 = 4, "u32";
    /// `int32`.
    I32 = 5, "i32";
    /// `float32`.
    F32 = 6, "f32";
    /// `bool` (one byte, 0 or 1).
    Bool = 7, "bool";
    /// `string` (u64 length, UTF-8 bytes, no NUL).
    String = 8, "string";
    /// `array` (u32 element type, u64 count, elements).
    Array = 9, "array";
    /// `uint64`.
    U64 = 10, "u64";
    /// `int64`.
    I64 = 11, "i64";
    /// `float64`.
    F64 = 12, "f64";
}

impl ValueType {
    /// GGUF's numeric id.
    pub const fn id(self) -> u32 {
        self as u32
    }

    /// Fewest bytes one value of this type takes on disk (a string's length field, an array's
    /// type and count fields).
    pub const fn min_size(self) -> usize {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string`.
    Str(String),
    /// `array`.
    Array(Array),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl Value {
    /// The GGUF type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::Str(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Human description of the type for error messages: `"u32"`, `"array of string"`,
    /// `"array of array"`.
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(a) => format!("array of {}", a.elem_type()),
            v => v.value_type().name().to_string(),
        }
    }
}

/// A metadata array: one typed vector per element type. Arrays of arrays hold [`Array`]s,
/// each with its own element type (GGUF stores a type per inner array).
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// Array of `uint8`.
    U8(Vec<u8>),
    /// Array of `int8`.
    I8(Vec<i8>),
    /// Array of `uint16`.
    U16(Vec<u16>),
    /// Array of `int16`.
    I16(Vec<i16>),
    /// Array of `uint32`.
    U32(Vec<u32>),
    /// Array of `int32`.
    I32(Vec<i32>),
    /// Array of `float32`.
    F32(Vec<f32>),
    /// Array of `bool`.
    Bool(Vec<bool>),
    /// Array of `string`.
    Str(Vec<String>),
    /// Array of arrays.
    Array(Vec<Array>),
    /// Array of `uint64`.
    U64(Vec<u64>),
    /// Array of `int64`.
    I64(Vec<i64>),
    /// Array of `float64`.
    F64(Vec<f64>),
}

impl Array {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::Str(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::Str(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nesting depth: 1 for an array of scalars or strings, 1 + the deepest inner array for an
    /// array of arrays.
    pub fn depth(&self) -> usize {
        match self {
            Array::Array(v) => 1 + v.iter().map(Array::depth).max().unwrap_or(0),
            _ => 1,
        }
    }
}

macro_rules! from_impls {
    ($( $t:ty => $variant:ident ),*) => {
        $(
            impl From<$t> for Value {
                fn from(v: $t) -> Self { Value::$variant(v) }
            }
            impl From<Vec<$t>> for Array {
                fn from(v: Vec<$t>) -> Self { Array::$variant(v) }
            }
        )*
    };
}

from_impls!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => Str, u64 => U64, i64 => I64, f64 => F64);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}

impl From<Array> for Value {
    fn from(v: Array) -> Self {
        Value::Array(v)
    }
}

impl From<Vec<Array>> for Array {
    fn from(v: Vec<Array>) -> Self {
        Array::Array(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_type_ids_match_the_gguf_spec() {
        let expected = [
            (ValueType::U8, 0),
            (ValueType::I8, 1),
            (ValueType::U16, 2),
            (ValueType::I16, 3),
            (ValueType::U32, 4),
            (ValueType::I32, 5),
            (ValueType::F32, 6),
            (ValueType::Bool, 7),
            (ValueType::String, 8),
            (ValueType::Array, 9),
            (ValueType::U64, 10),
            (ValueType::I64, 11),
            (ValueType::F64, 12),
        ];
        assert_eq!(ValueType::ALL.len(), expected.len());
        for (t, id) in expected {
            assert_eq!(t.id(), id);
            assert_eq!(ValueType::from_id(id), Some(t));
        }
        assert_eq!(ValueType::from_id(13), None);
    }

    #[test]
    fn array_depth_counts_nesting() {
        let leaf = Array::U8(vec![1]);
        assert_eq!(leaf.depth(), 1);
        let two = Array::Array(vec![leaf.clone(), Array::Array(vec![])]);
        assert_eq!(two.depth(), 2);
        assert_eq!(Array::Array(vec![two]).depth(), 3);
    }
}
