//! How Python objects become queue messages, and back.
//!
//! The common small messages (`None`, `bool`, `int` within 64 bits, `float`, `str`,
//! `bytes`, exactly those types, not subclasses) are written natively: a tag byte and the
//! value, with no pickler in the way (pickling an int costs more than moving it). So are
//! non-empty lists made only of such ints, or only of floats: the inputs and results of a
//! pool's `map` over numbers, which unpickle four times slower than they decode here. A
//! list of small NumPy arrays (what `np.array_split` makes) is their raw items and lengths:
//! the reader rebuilds them as views of one array, instead of unpickling each one. Anything
//! else goes through the queue's pickler with protocol 5, and large buffers it hands out
//! of band (NumPy arrays, `PickleBuffer`s) are copied straight into the ring after the
//! pickle instead of into the pickle first; the reader gets them back as slices of one
//! writable `bytearray`, so arrays rebuilt over them are not copied again.
//!
//! ```text
//! 0x01 None   0x02 False   0x03 True
//! 0x04 int    i64, little-endian          0x05 float  f64, little-endian
//! 0x06 str    UTF-8 bytes                 0x07 bytes  the bytes
//! 0x08 pickle with out-of-band buffers:
//!      u32 count, u64 pickle length, u64 length of each buffer, the pickle, the buffers
//! 0x09 a list of ints, each i64 little-endian
//! 0x0a a list of floats, each f64 little-endian
//! 0x0b a list of one-dimensional C-contiguous NumPy arrays of one simple dtype:
//!      u8 item format (`struct` syntax), u8 item size, 6 bytes of padding, u64 count,
//!      u64 length (in items) of each array, then their items back to back (8-aligned)
//! 0x80 a plain pickle (protocol 2 and later start with the PROTO opcode, 0x80)
//! ```
//!
//! Queue messages never leave ferroproc's own queues, so this format only has to agree
//! with itself; `Connection.send` stays plain pickle, as the stdlib's wire format requires.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::buffer::HeldBuffer;

const NONE: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const INT: u8 = 0x04;
const FLOAT: u8 = 0x05;
const STR: u8 = 0x06;
/// The tag of a `bytes` message (its payload can be read straight into a `bytes`).
pub const BYTES: u8 = 0x07;
const PICKLE_OOB: u8 = 0x08;
const INT_LIST: u8 = 0x09;
const FLOAT_LIST: u8 = 0x0a;
const ARRAYS: u8 = 0x0b;
/// Item formats an array list may have: native single-character `struct` codes that
/// `memoryview.cast` accepts.
const ARRAY_FORMATS: &[u8] = b"?bBhHiIlLqQfd";
const PICKLE: u8 = 0x80;

/// An object encoded for the ring: the message is the concatenation of [`parts`](Self::parts).
pub enum Encoded<'py> {
    /// A tag and up to 8 bytes of value.
    Scalar { bytes: [u8; 9], len: usize },
    /// A tag and the values of a list of numbers.
    Numbers(Vec<u8>),
    /// A list of arrays: the header, then each array's memory.
    Arrays {
        header: Vec<u8>,
        arrays: Vec<HeldBuffer<'py>>,
    },
    /// A tag, then the bytes of a `bytes` object (a `str`'s UTF-8 encoding).
    Borrowed {
        tag: [u8; 1],
        data: Bound<'py, PyBytes>,
    },
    /// A pickle (protocol 2+: it carries its own 0x80 tag).
    Pickle(HeldBuffer<'py>),
    /// A pickle and its out-of-band buffers, after a header.
    PickleOob {
        header: Vec<u8>,
        pickle: HeldBuffer<'py>,
        buffers: Vec<HeldBuffer<'py>>,
    },
}

impl<'py> Encoded<'py> {
    /// Encodes `obj`, calling the pickler that `dumps` returns when the native format does
    /// not cover it. The pickler returns `(pickle, [out-of-band buffers])`.
    pub fn new(
        obj: &Bound<'py, PyAny>,
        dumps: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        if let Some(native) = Self::native(obj)? {
            return Ok(native);
        }
        let pickled = dumps()?.call1((obj,))?;
        let pickled = pickled.cast_into::<PyTuple>().map_err(PyErr::from)?;
        let pickle = HeldBuffer::readable(&pickled.get_item(0)?)?;
        let buffers = pickled.get_item(1)?;
        let buffers = buffers.cast::<PyList>().map_err(PyErr::from)?;
        if buffers.is_empty() {
            if pickle.as_slice().first() != Some(&PICKLE) {
                return Err(PyValueError::new_err(
                    "the queue's pickler must use protocol 2 or later",
                ));
            }
            return Ok(Self::Pickle(pickle));
        }
        let held: Vec<HeldBuffer<'py>> = buffers
            .iter()
            .map(|buffer| HeldBuffer::readable(&buffer))
            .collect::<PyResult<_>>()?;
        let mut header = Vec::with_capacity(13 + 8 * held.len());
        header.push(PICKLE_OOB);
        header.extend_from_slice(&(held.len() as u32).to_le_bytes());
        header.extend_from_slice(&(pickle.as_slice().len() as u64).to_le_bytes());
        for buffer in &held {
            header.extend_from_slice(&(buffer.as_slice().len() as u64).to_le_bytes());
        }
        Ok(Self::PickleOob {
            header,
            pickle,
            buffers: held,
        })
    }

    fn native(obj: &Bound<'py, PyAny>) -> PyResult<Option<Self>> {
        let scalar = |tag: u8, value: &[u8]| {
            let mut bytes = [0u8; 9];
            bytes[0] = tag;
            bytes[1..=value.len()].copy_from_slice(value);
            Some(Self::Scalar {
                bytes,
                len: 1 + value.len(),
            })
        };
        // Exact types only: a subclass may carry state or behaviour a pickle keeps.
        Ok(if obj.is_none() {
            scalar(NONE, &[])
        } else if obj.is_exact_instance_of::<PyBool>() {
            scalar(if obj.is_truthy()? { TRUE } else { FALSE }, &[])
        } else if obj.is_exact_instance_of::<PyInt>() {
            match obj.extract::<i64>() {
                Ok(value) => scalar(INT, &value.to_le_bytes()),
                Err(_) => None,
            }
        } else if obj.is_exact_instance_of::<PyFloat>() {
            let value: f64 = obj.extract()?;
            scalar(FLOAT, &value.to_le_bytes())
        } else if let Ok(text) = obj.cast_exact::<PyString>() {
            // Strings with lone surrogates have no UTF-8 form: they are pickled.
            match text.encode_utf8() {
                Ok(data) => Some(Self::Borrowed { tag: [STR], data }),
                Err(_) => None,
            }
        } else if let Ok(bytes) = obj.cast_exact::<PyBytes>() {
            Some(Self::Borrowed {
                tag: [BYTES],
                data: bytes.clone(),
            })
        } else if let Ok(list) = obj.cast_exact::<PyList>() {
            match Self::numbers(list)? {
                Some(numbers) => Some(numbers),
                None => Self::arrays(list)?,
            }
        } else {
            None
        })
    }

    /// A list of only exact `numpy.ndarray`s (not subclasses), one-dimensional,
    /// C-contiguous, all of one simple item format; `None` for any other list.
    fn arrays(list: &Bound<'py, PyList>) -> PyResult<Option<Self>> {
        let Ok(first) = list.get_item(0) else {
            return Ok(None);
        };
        let array_type = first.get_type();
        if array_type.name()? != "ndarray" || array_type.module()? != "numpy" {
            return Ok(None);
        }
        let mut arrays = Vec::with_capacity(list.len());
        let mut header = Vec::with_capacity(16 + 8 * list.len());
        header.extend_from_slice(&[ARRAYS, 0, 0, 0, 0, 0, 0, 0]);
        header.extend_from_slice(&(list.len() as u64).to_le_bytes());
        for item in list.iter() {
            if !item.get_type().is(&array_type) {
                return Ok(None);
            }
            let Ok(held) = HeldBuffer::typed(&item) else {
                return Ok(None);
            };
            let format = held.format();
            let simple = format.len() == 1 && ARRAY_FORMATS.contains(&format[0]);
            if held.ndim() != 1 || !simple || held.itemsize() == 0 || held.itemsize() > 255 {
                return Ok(None);
            }
            if arrays.is_empty() {
                header[1] = format[0];
                header[2] = held.itemsize() as u8;
            } else if header[1] != format[0] {
                return Ok(None);
            }
            let items = (held.as_slice().len() / held.itemsize()) as u64;
            header.extend_from_slice(&items.to_le_bytes());
            arrays.push(held);
        }
        Ok(Some(Self::Arrays { header, arrays }))
    }

    /// A list of only exact ints within 64 bits, or only exact floats; `None` for any
    /// other list (it is pickled).
    fn numbers(list: &Bound<'py, PyList>) -> PyResult<Option<Self>> {
        let Ok(first) = list.get_item(0) else {
            return Ok(None);
        };
        let ints = first.is_exact_instance_of::<PyInt>();
        if !ints && !first.is_exact_instance_of::<PyFloat>() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(1 + 8 * list.len());
        out.push(if ints { INT_LIST } else { FLOAT_LIST });
        for item in list.iter() {
            let value = if ints {
                if !item.is_exact_instance_of::<PyInt>() {
                    return Ok(None);
                }
                match item.extract::<i64>() {
                    Ok(value) => value.to_le_bytes(),
                    Err(_) => return Ok(None),
                }
            } else {
                if !item.is_exact_instance_of::<PyFloat>() {
                    return Ok(None);
                }
                item.extract::<f64>()?.to_le_bytes()
            };
            out.extend_from_slice(&value);
        }
        Ok(Some(Self::Numbers(out)))
    }

    /// The message, as slices to write one after the other.
    pub fn parts(&self) -> Vec<&[u8]> {
        match self {
            Self::Scalar { bytes, len } => vec![&bytes[..*len]],
            Self::Numbers(bytes) => vec![bytes.as_slice()],
            Self::Arrays { header, arrays } => {
                let mut parts = Vec::with_capacity(1 + arrays.len());
                parts.push(header.as_slice());
                parts.extend(arrays.iter().map(HeldBuffer::as_slice));
                parts
            }
            Self::Borrowed { tag, data } => vec![tag, data.as_bytes()],
            Self::Pickle(pickle) => vec![pickle.as_slice()],
            Self::PickleOob {
                header,
                pickle,
                buffers,
            } => {
                let mut parts = Vec::with_capacity(2 + buffers.len());
                parts.push(header.as_slice());
                parts.push(pickle.as_slice());
                parts.extend(buffers.iter().map(HeldBuffer::as_slice));
                parts
            }
        }
    }

    /// The message in one piece (for batches).
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

/// Decodes a message; `loads(data, buffers)` unpickles what is not native.
pub fn decode(
    py: Python<'_>,
    message: &[u8],
    loads: impl FnOnce(Py<PyAny>, Py<PyAny>) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let Some((&tag, value)) = message.split_first() else {
        return Err(corrupt("an empty message"));
    };
    let eight = |value: &[u8]| -> PyResult<[u8; 8]> {
        value
            .try_into()
            .map_err(|_| corrupt("a scalar of the wrong size"))
    };
    Ok(match tag {
        NONE => py.None(),
        FALSE => PyBool::new(py, false).to_owned().into_any().unbind(),
        TRUE => PyBool::new(py, true).to_owned().into_any().unbind(),
        INT => i64::from_le_bytes(eight(value)?)
            .into_pyobject(py)?
            .into_any()
            .unbind(),
        FLOAT => PyFloat::new(py, f64::from_le_bytes(eight(value)?))
            .into_any()
            .unbind(),
        STR => PyString::new(
            py,
            std::str::from_utf8(value).map_err(|_| corrupt("a string that is not UTF-8"))?,
        )
        .into_any()
        .unbind(),
        BYTES => PyBytes::new(py, value).into_any().unbind(),
        PICKLE => {
            let data = PyBytes::new(py, message).into_any().unbind();
            loads(data, PyTuple::empty(py).into_any().unbind())?
        }
        PICKLE_OOB => decode_out_of_band(py, value, None, loads)?,
        ARRAYS => decode_arrays(py, value, None)?,
        INT_LIST => decode_numbers(py, value, |bytes| {
            Ok(i64::from_le_bytes(bytes).into_pyobject(py)?.into_any())
        })?,
        FLOAT_LIST => decode_numbers(py, value, |bytes| {
            Ok(PyFloat::new(py, f64::from_le_bytes(bytes)).into_any())
        })?,
        _ => return Err(corrupt("an unknown tag")),
    })
}

/// Decodes the body of an 0x0b message, `value`: the arrays come back as views of one
/// array over the items (a slice of `source` when given, else one writable copy).
fn decode_arrays(
    py: Python<'_>,
    value: &[u8],
    source: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let read_u64 = |at: usize| -> PyResult<u64> {
        value
            .get(at..at + 8)
            .and_then(|bytes| bytes.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| corrupt("a truncated array table"))
    };
    let (format, itemsize) = match value {
        [format, itemsize, ..] if ARRAY_FORMATS.contains(format) && *itemsize > 0 => {
            (*format, u64::from(*itemsize))
        }
        _ => return Err(corrupt("an array list of an unknown item format")),
    };
    let count = read_u64(7)?;
    let data_start = count
        .checked_mul(8)
        .and_then(|table| table.checked_add(15))
        .filter(|&start| start <= value.len() as u64)
        .ok_or_else(|| corrupt("a truncated array table"))? as usize;
    let mut lengths = Vec::with_capacity(count as usize);
    for index in 0..count as usize {
        lengths.push(read_u64(15 + 8 * index)?);
    }
    let items = lengths
        .iter()
        .try_fold(0u64, |sum, &len| sum.checked_add(len))
        .ok_or_else(|| corrupt("array lengths that overflow"))?;
    if items.checked_mul(itemsize) != Some((value.len() - data_start) as u64) {
        return Err(corrupt("array lengths that disagree with the message"));
    }
    let builtins = py.import("builtins")?;
    let block = match source {
        Some(source) => source.get_item(pyo3::types::PySlice::new(
            py,
            data_start as isize,
            value.len() as isize,
            1,
        ))?,
        None => builtins
            .getattr("memoryview")?
            .call1((PyByteArray::new(py, &value[data_start..]),))?,
    };
    let typed = block.call_method1("cast", (std::str::from_utf8(&[format]).unwrap_or("B"),))?;
    let base = py.import("numpy")?.getattr("asarray")?.call1((typed,))?;
    let mut start = 0u64;
    let mut arrays = Vec::with_capacity(lengths.len());
    for len in lengths {
        let range = pyo3::types::PySlice::new(py, start as isize, (start + len) as isize, 1);
        arrays.push(base.get_item(range)?);
        start += len;
    }
    Ok(PyList::new(py, arrays)?.into_any().unbind())
}

fn decode_numbers<'py>(
    py: Python<'py>,
    value: &[u8],
    number: impl Fn([u8; 8]) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Py<PyAny>> {
    if value.len() % 8 != 0 {
        return Err(corrupt("a list of numbers of the wrong size"));
    }
    let items = value
        .chunks_exact(8)
        .map(|bytes| number(bytes.try_into().expect("chunks of 8")))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any().unbind())
}

/// Decodes a message held by `view` (a `memoryview`, e.g. of a mapped file) without
/// copying it: the pickle and the out-of-band buffers of an 0x08 message are slices of
/// `view` itself, so arrays rebuilt over them live in the mapping.
pub fn decode_view(
    py: Python<'_>,
    view: &Bound<'_, PyAny>,
    loads: impl FnOnce(Py<PyAny>, Py<PyAny>) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let held = HeldBuffer::readable(view)?;
    let message = held.as_slice();
    let tag = message.first().copied();
    if tag != Some(PICKLE_OOB) && tag != Some(ARRAYS) {
        return decode(py, message, loads);
    }
    let after_tag = view.get_item(pyo3::types::PySlice::new(py, 1, isize::MAX, 1))?;
    if tag == Some(ARRAYS) {
        return decode_arrays(py, &message[1..], Some(&after_tag));
    }
    decode_out_of_band(py, &message[1..], Some(&after_tag), loads)
}

/// Decodes the body of an 0x08 message, `value`. With `source` (a `memoryview` of exactly
/// these bytes) the pickle and buffers are its slices; otherwise one writable copy.
fn decode_out_of_band(
    py: Python<'_>,
    value: &[u8],
    source: Option<&Bound<'_, PyAny>>,
    loads: impl FnOnce(Py<PyAny>, Py<PyAny>) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let read_u64 = |at: usize| -> PyResult<u64> {
        value
            .get(at..at + 8)
            .and_then(|bytes| bytes.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| corrupt("a truncated buffer table"))
    };
    let count = value
        .get(0..4)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("a truncated buffer table"))? as usize;
    let table_end = 4 + 8 * (count + 1);
    let pickle_len = read_u64(4)?;
    let mut lengths = Vec::with_capacity(count.min(value.len() / 8));
    for index in 0..count {
        lengths.push(read_u64(12 + 8 * index)?);
    }
    let total = lengths
        .iter()
        .try_fold(pickle_len, |sum, &len| sum.checked_add(len))
        .ok_or_else(|| corrupt("buffer lengths that overflow"))?;
    if table_end as u64 + total != value.len() as u64 {
        return Err(corrupt("buffer lengths that disagree with the message"));
    }
    let view = match source {
        Some(source) => source.get_item(pyo3::types::PySlice::new(
            py,
            table_end as isize,
            value.len() as isize,
            1,
        ))?,
        None => {
            // One writable copy; the pickle and each buffer are views of it.
            let body = PyByteArray::new(py, &value[table_end..]);
            py.import("builtins")?
                .getattr("memoryview")?
                .call1((body,))?
        }
    };
    let slice = |start: u64, len: u64| -> PyResult<Py<PyAny>> {
        let range = pyo3::types::PySlice::new(py, start as isize, (start + len) as isize, 1);
        Ok(view.get_item(range)?.unbind())
    };
    let pickle = slice(0, pickle_len)?;
    let mut start = pickle_len;
    let mut buffers = Vec::with_capacity(count);
    for len in lengths {
        buffers.push(slice(start, len)?);
        start += len;
    }
    let buffers = PyList::new(py, buffers)?.into_any().unbind();
    loads(pickle, buffers)
}

fn corrupt(what: &str) -> PyErr {
    PyValueError::new_err(format!("corrupt queue message: {what}"))
}
