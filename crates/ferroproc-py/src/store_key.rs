//! Python keys as canonical bytes: two keys that Python calls equal (`1`, `1.0` and
//! `True`; a `str` and its subclass) get the same bytes, whatever the process's hash seed,
//! so every process finds them in a shared map.
//!
//! ```text
//! n          None
//! i  i64     an int, a bool, or a float with an integral value, within 64 bits
//! I  digits  an int (or integral float) beyond 64 bits, in decimal
//! f  f64     any other float (its bits)
//! s  UTF-8   a str
//! b  bytes   a bytes
//! t  (u32 length, canonical bytes) per item: a tuple of keys
//! p  pickle  anything else: equal only when the pickles are
//! ```
//!
//! What the key looked like when inserted goes in the extra bytes, which the store keeps
//! but does not compare: `B` a bool, `F` a float, `P` and a pickle for a subclass of these
//! types (an `IntEnum` member, say), nothing for the exact types. Reading the key back
//! gives the object that was inserted first, as a `dict` does.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString, PyTuple};

/// A key's canonical bytes and its extra bytes.
pub struct Key {
    pub canonical: Vec<u8>,
    pub extra: Vec<u8>,
}

/// Encodes `key`; `dumps(obj) -> bytes` pickles what has no canonical form.
pub fn encode(key: &Bound<'_, PyAny>, dumps: &Bound<'_, PyAny>) -> PyResult<Key> {
    let mut canonical = Vec::with_capacity(16);
    let exact = canonical_into(key, dumps, &mut canonical)?;
    let extra = if !exact {
        let mut extra = vec![b'P'];
        extra.extend_from_slice(dumps.call1((key,))?.cast::<PyBytes>()?.as_bytes());
        extra
    } else if key.is_exact_instance_of::<PyBool>() {
        vec![b'B']
    } else if key.is_exact_instance_of::<PyFloat>() && canonical[0] != b'f' {
        vec![b'F']
    } else {
        Vec::new()
    };
    Ok(Key { canonical, extra })
}

/// Appends `key`'s canonical bytes to `out`; false if `key` is a subclass of the type
/// it was encoded as (so reading it back needs its pickle).
fn canonical_into(
    key: &Bound<'_, PyAny>,
    dumps: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
) -> PyResult<bool> {
    if key.is_none() {
        out.push(b'n');
        return Ok(true);
    }
    if let Ok(string) = key.cast::<PyString>() {
        out.push(b's');
        match string.to_cow() {
            Ok(text) => out.extend_from_slice(text.as_bytes()),
            // Lone surrogates have no UTF-8: they keep their pickle, still canonical.
            Err(_) => {
                let tag = out.len() - 1;
                out[tag] = b'p';
                out.extend_from_slice(dumps.call1((key,))?.cast::<PyBytes>()?.as_bytes());
            }
        }
        return Ok(key.is_exact_instance_of::<PyString>());
    }
    if let Ok(int) = key.cast::<PyInt>() {
        integer_into(int.as_any(), out)?;
        return Ok(key.is_exact_instance_of::<PyInt>() || key.is_exact_instance_of::<PyBool>());
    }
    if let Ok(float) = key.cast::<PyFloat>() {
        let value = float.value();
        if value.is_finite() && value.fract() == 0.0 {
            let as_int = key.py().get_type::<PyInt>().call1((value,))?;
            integer_into(&as_int, out)?;
        } else {
            out.push(b'f');
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
        return Ok(key.is_exact_instance_of::<PyFloat>());
    }
    if let Ok(bytes) = key.cast::<PyBytes>() {
        out.push(b'b');
        out.extend_from_slice(bytes.as_bytes());
        return Ok(key.is_exact_instance_of::<PyBytes>());
    }
    if let Ok(tuple) = key.cast::<PyTuple>() {
        out.push(b't');
        for item in tuple.iter() {
            let mut inner = Vec::new();
            canonical_into(&item, dumps, &mut inner)?;
            out.extend_from_slice(&(inner.len() as u32).to_le_bytes());
            out.extend_from_slice(&inner);
        }
        return Ok(key.is_exact_instance_of::<PyTuple>());
    }
    // Unhashable keys fail as they would in a dict.
    key.hash()?;
    out.push(b'p');
    out.extend_from_slice(dumps.call1((key,))?.cast::<PyBytes>()?.as_bytes());
    Ok(true)
}

fn integer_into(int: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(small) = int.extract::<i64>() {
        out.push(b'i');
        out.extend_from_slice(&small.to_le_bytes());
    } else {
        out.push(b'I');
        let digits = int.py().get_type::<PyInt>().call1((int,))?.str()?;
        out.extend_from_slice(digits.to_cow()?.as_bytes());
    }
    Ok(())
}

/// The key an entry's canonical and extra bytes stand for.
pub fn decode<'py>(
    py: Python<'py>,
    canonical: &[u8],
    extra: &[u8],
    loads: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    match extra.split_first() {
        Some((b'P', pickle)) => return loads.call1((PyBytes::new(py, pickle),)),
        Some((b'B', _)) => {
            let truth = decode_canonical(py, canonical, loads)?.is_truthy()?;
            return Ok(PyBool::new(py, truth).to_owned().into_any());
        }
        Some((b'F', _)) => {
            let number = decode_canonical(py, canonical, loads)?;
            return py.get_type::<PyFloat>().call1((number,));
        }
        _ => {}
    }
    decode_canonical(py, canonical, loads)
}

fn decode_canonical<'py>(
    py: Python<'py>,
    canonical: &[u8],
    loads: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some((&tag, body)) = canonical.split_first() else {
        return Err(corrupt());
    };
    let eight = || -> PyResult<[u8; 8]> { body.try_into().map_err(|_| corrupt()) };
    Ok(match tag {
        b'n' => py.None().into_bound(py),
        b'i' => i64::from_le_bytes(eight()?).into_pyobject(py)?.into_any(),
        b'I' => {
            let digits = std::str::from_utf8(body).map_err(|_| corrupt())?;
            py.get_type::<PyInt>().call1((digits,))?
        }
        b'f' => PyFloat::new(py, f64::from_bits(u64::from_le_bytes(eight()?))).into_any(),
        b's' => PyString::new(py, std::str::from_utf8(body).map_err(|_| corrupt())?).into_any(),
        b'b' => PyBytes::new(py, body).into_any(),
        b'p' => loads.call1((PyBytes::new(py, body),))?,
        b't' => {
            let mut items = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (length, tail) = rest.split_at_checked(4).ok_or_else(corrupt)?;
                let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
                let (item, tail) = tail.split_at_checked(length).ok_or_else(corrupt)?;
                items.push(decode_canonical(py, item, loads)?);
                rest = tail;
            }
            PyTuple::new(py, items)?.into_any()
        }
        _ => return Err(corrupt()),
    })
}

fn corrupt() -> PyErr {
    PyValueError::new_err("a shared store holds a key it cannot decode")
}
