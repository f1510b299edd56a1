//! `ferroproc._core.Store`: the core's shared map and sequence, holding Python objects.
//!
//! Keys become canonical bytes (`store_key`), values the queue codec's messages (native
//! bytes for `None`, numbers, `str` and `bytes`, a pickle for the rest). Each method takes
//! the store's lock once, without releasing the GIL when it is free (no system call), so
//! an operation costs a hash, a probe and a copy. `ferroproc._store` builds the `dict`,
//! `list`, `Namespace` and `Value` of managers on it.

use std::os::fd::AsRawFd;

use ferroproc_core::store::{Locked, Store, StoreKind};
use pyo3::exceptions::{PyIndexError, PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::blocking::{deadline_after, wait_until};
use crate::codec::{self, Encoded};
use crate::errors::OrRaise;
use crate::identity::me_thread;
use crate::store_key;

/// A map or sequence in shared memory.
#[derive(Debug)]
#[pyclass(name = "Store", module = "ferroproc._core", frozen, weakref)]
pub struct PyStore {
    store: Store,
    /// `dumps(obj) -> bytes`: the pickler for keys with no canonical form.
    dumps: Py<PyAny>,
    /// `dumps_with_buffers(obj) -> (bytes, [])`: the codec's pickler, for values.
    dumps_with_buffers: Py<PyAny>,
    /// `loads(data, buffers=()) -> obj`: the inverse of both.
    loads: Py<PyAny>,
}

fn kind_named(kind: &str) -> PyResult<StoreKind> {
    match kind {
        "map" => Ok(StoreKind::Map),
        "sequence" => Ok(StoreKind::Sequence),
        other => Err(PyValueError::new_err(format!(
            "a store is a 'map' or a 'sequence', not {other:?}"
        ))),
    }
}

/// `index` (negative: from the end) as a position within `length`.
fn position(index: i64, length: u64, message: &'static str) -> PyResult<u64> {
    let resolved = if index < 0 {
        i64::try_from(length).unwrap_or(i64::MAX) + index
    } else {
        index
    };
    u64::try_from(resolved)
        .ok()
        .filter(|&position| position < length)
        .ok_or_else(|| PyIndexError::new_err(message))
}

impl PyStore {
    fn wrap(store: Store, pickling: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            store,
            dumps: pickling.getattr("dumps")?.unbind(),
            dumps_with_buffers: pickling.getattr("dumps_with_buffers")?.unbind(),
            loads: pickling.getattr("loads")?.unbind(),
        })
    }

    /// The store, locked by the calling thread: at once if it is free, else waiting with
    /// the GIL released (and Ctrl-C honoured).
    fn locked(&self, py: Python<'_>) -> PyResult<Locked<'_>> {
        let me = me_thread();
        if let Some(locked) = self.store.try_lock(me).or_raise()? {
            return Ok(locked);
        }
        let store = &self.store;
        let locked = wait_until(py, None, |until| store.lock(me, Some(until)))?;
        Ok(locked.expect("a wait without a deadline ends locked"))
    }

    fn key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<store_key::Key> {
        store_key::encode(key, self.dumps.bind(py))
    }

    fn encode_value(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        let pickler = self.dumps_with_buffers.bind(py).clone();
        Ok(Encoded::new(value, || Ok(pickler))?.to_vec())
    }

    fn decode_value(&self, py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyAny>> {
        codec::decode(py, bytes, |data, buffers| {
            Ok(self.loads.bind(py).call1((data, buffers))?.unbind())
        })
    }

    fn decode_key<'py>(
        &self,
        py: Python<'py>,
        canonical: &[u8],
        extra: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let loads = self.loads.bind(py);
        store_key::decode(py, canonical, extra, loads)
    }
}

#[pymethods]
impl PyStore {
    /// A new empty store: `kind` is `"map"` or `"sequence"`; `capacity` is address space
    /// (memory is taken as the store grows). `pickling` supplies `dumps(obj) -> bytes`,
    /// `dumps_with_buffers(obj) -> (bytes, [])` and `loads(data, buffers=()) -> obj`, for
    /// what the store has no native form for.
    #[new]
    fn new(kind: &str, capacity: usize, pickling: &Bound<'_, PyAny>) -> PyResult<Self> {
        let store = Store::create(kind_named(kind)?, capacity).or_raise()?;
        Self::wrap(store, pickling)
    }

    /// The store `id` that process `pid` holds as descriptor `fd` (same user and machine:
    /// opened through `/proc`).
    #[staticmethod]
    fn attach_from_process(
        py: Python<'_>,
        pid: u32,
        fd: u32,
        id: u64,
        pickling: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let store = py
            .detach(|| Store::attach_from_process(pid, fd, id))
            .or_raise()?;
        Self::wrap(store, pickling)
    }

    /// `"map"` or `"sequence"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.store.kind() {
            StoreKind::Map => "map",
            StoreKind::Sequence => "sequence",
        }
    }

    /// The store's identity: random, fixed at creation.
    #[getter]
    fn id(&self) -> u64 {
        self.store.id()
    }

    /// This process's descriptor of the store's segment.
    #[getter]
    fn fd(&self) -> i32 {
        self.store.segment().fd().as_raw_fd()
    }

    /// How many times a process died holding the store's lock and the store was repaired.
    #[getter]
    fn recoveries(&self) -> PyResult<u64> {
        self.store.recoveries().or_raise()
    }

    /// Takes the store's (recursive) lock for a compound operation; `False` on timeout.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let me = me_thread();
        if let Some(locked) = self.store.try_lock(me).or_raise()? {
            locked.keep();
            return Ok(true);
        }
        if !block {
            return Ok(false);
        }
        let deadline = deadline_after(timeout)?;
        let store = &self.store;
        let locked = wait_until(py, deadline, |until| store.lock(me, Some(until)))?;
        Ok(locked.map(Locked::keep).is_some())
    }

    /// Releases one level of the lock [`acquire`] took.
    fn release(&self) -> PyResult<()> {
        self.store.unlock(me_thread()).or_raise()
    }

    // The map.

    /// `d[key]`: raises `KeyError`.
    fn map_get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let encoded = self.key(py, key)?;
        let mut value = Vec::new();
        let found = self
            .locked(py)?
            .map_get(&encoded.canonical, &mut value)
            .or_raise()?;
        if !found {
            return Err(PyKeyError::new_err(key.clone().unbind()));
        }
        self.decode_value(py, &value)
    }

    /// `d.get(key, default)`.
    fn map_get_or(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Py<PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let encoded = self.key(py, key)?;
        let mut value = Vec::new();
        let found = self
            .locked(py)?
            .map_get(&encoded.canonical, &mut value)
            .or_raise()?;
        if found {
            self.decode_value(py, &value)
        } else {
            Ok(default)
        }
    }

    /// `d[key] = value`.
    fn map_set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let encoded = self.key(py, key)?;
        let value = self.encode_value(py, value)?;
        self.locked(py)?
            .map_set(&encoded.canonical, &encoded.extra, &value)
            .or_raise()?;
        Ok(())
    }

    /// `d.update(pairs)` for a list of `(key, value)` pairs, under one lock.
    fn map_update(&self, py: Python<'_>, pairs: &Bound<'_, PyList>) -> PyResult<()> {
        let mut encoded = Vec::with_capacity(pairs.len());
        for pair in pairs.iter() {
            let pair = pair.cast::<PyTuple>()?;
            let key = self.key(py, &pair.get_item(0)?)?;
            let value = self.encode_value(py, &pair.get_item(1)?)?;
            encoded.push((key, value));
        }
        let locked = self.locked(py)?;
        for (key, value) in &encoded {
            locked
                .map_set(&key.canonical, &key.extra, value)
                .or_raise()?;
        }
        Ok(())
    }

    /// `d.setdefault(key, default)`: the value, after inserting `default` if absent.
    fn map_setdefault(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let encoded = self.key(py, key)?;
        let new = self.encode_value(py, default)?;
        let mut value = Vec::new();
        let locked = self.locked(py)?;
        if locked.map_get(&encoded.canonical, &mut value).or_raise()? {
            drop(locked);
            return self.decode_value(py, &value);
        }
        locked
            .map_set(&encoded.canonical, &encoded.extra, &new)
            .or_raise()?;
        Ok(default.clone().unbind())
    }

    /// `del d[key]`: raises `KeyError`.
    fn map_delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let encoded = self.key(py, key)?;
        if self
            .locked(py)?
            .map_remove(&encoded.canonical, None)
            .or_raise()?
        {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// `d.pop(key)` (raises `KeyError`), or `d.pop(key, default)` with `default` given.
    #[pyo3(signature = (key, *default))]
    fn map_pop(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let encoded = self.key(py, key)?;
        let mut value = Vec::new();
        let found = self
            .locked(py)?
            .map_remove(&encoded.canonical, Some(&mut value))
            .or_raise()?;
        if found {
            self.decode_value(py, &value)
        } else if let Ok(default) = default.get_item(0) {
            Ok(default.unbind())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// `d.popitem()`: the last pair inserted; `KeyError` if empty.
    fn map_popitem(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let entry = self.locked(py)?.map_pop_last().or_raise()?;
        let entry = entry.ok_or_else(|| PyKeyError::new_err("popitem(): dictionary is empty"))?;
        let key = self.decode_key(py, entry.key(), entry.extra())?.unbind();
        Ok((key, self.decode_value(py, &entry.value)?))
    }

    /// `key in d`.
    fn map_contains(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        // An unhashable key is not in any dict: Python raises TypeError, and so do we.
        let encoded = self.key(py, key)?;
        self.locked(py)?.map_contains(&encoded.canonical).or_raise()
    }

    /// `len(d)`.
    fn map_len(&self, py: Python<'_>) -> PyResult<u64> {
        self.locked(py)?.map_len().or_raise()
    }

    /// `list(d.items())`, in insertion order, as one consistent snapshot.
    fn map_items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let entries = self.locked(py)?.map_entries().or_raise()?;
        let pairs = PyList::empty(py);
        for entry in entries {
            let key = self.decode_key(py, entry.key(), entry.extra())?;
            pairs.append((key, self.decode_value(py, &entry.value)?))?;
        }
        Ok(pairs)
    }

    /// `list(d)`, in insertion order.
    fn map_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let entries = self.locked(py)?.map_entries().or_raise()?;
        let keys = PyList::empty(py);
        for entry in entries {
            keys.append(self.decode_key(py, entry.key(), entry.extra())?)?;
        }
        Ok(keys)
    }

    /// `list(d.values())`, in insertion order.
    fn map_values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let entries = self.locked(py)?.map_entries().or_raise()?;
        let values = PyList::empty(py);
        for entry in entries {
            values.append(self.decode_value(py, &entry.value)?)?;
        }
        Ok(values)
    }

    /// `d.clear()`.
    fn map_clear(&self, py: Python<'_>) -> PyResult<()> {
        self.locked(py)?.map_clear().or_raise()
    }

    // The sequence.

    /// `len(l)`.
    fn seq_len(&self, py: Python<'_>) -> PyResult<u64> {
        self.locked(py)?.seq_len().or_raise()
    }

    /// `l[index]` for an int index (negative counts from the end).
    fn seq_get(&self, py: Python<'_>, index: i64) -> PyResult<Py<PyAny>> {
        let mut value = Vec::new();
        {
            let locked = self.locked(py)?;
            let at = position(
                index,
                locked.seq_len().or_raise()?,
                "list index out of range",
            )?;
            locked.seq_get(at, &mut value).or_raise()?;
        }
        self.decode_value(py, &value)
    }

    /// `l[index] = value` for an int index.
    fn seq_set(&self, py: Python<'_>, index: i64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = self.encode_value(py, value)?;
        let locked = self.locked(py)?;
        let length = locked.seq_len().or_raise()?;
        let at = position(index, length, "list assignment index out of range")?;
        locked.seq_set(at, &value).or_raise()
    }

    /// `l.append(value)`.
    fn seq_append(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = self.encode_value(py, value)?;
        self.locked(py)?.seq_push(&value).or_raise()
    }

    /// `l[start:stop] = values` with `0 <= start <= stop` (clamped to the length, as
    /// slices are); `stop=None` means the end, so `l.extend(values)` is
    /// `seq_splice(len, None, values)` without a separate `len`.
    #[pyo3(signature = (start, stop, values))]
    fn seq_splice(
        &self,
        py: Python<'_>,
        start: u64,
        stop: Option<u64>,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let mut encoded = Vec::new();
        for value in values.try_iter()? {
            encoded.push(self.encode_value(py, &value?)?);
        }
        let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let locked = self.locked(py)?;
        let length = locked.seq_len().or_raise()?;
        let stop = stop.unwrap_or(length).min(length);
        let start = start.min(stop);
        locked.seq_splice(start, stop, &parts).or_raise()
    }

    /// `list(l)`, one consistent snapshot.
    fn seq_items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self.locked(py)?.seq_items().or_raise()?;
        let list = PyList::empty(py);
        for item in items {
            list.append(self.decode_value(py, &item)?)?;
        }
        Ok(list)
    }

    fn __repr__(&self) -> String {
        format!(
            "<ferroproc._core.Store {} id={:#x} fd={}>",
            self.kind(),
            self.store.id(),
            self.fd()
        )
    }
}
