//! Borrowing the memory of any object that has the buffer protocol.
//!
//! `send_bytes` takes bytes, bytearrays, memoryviews, arrays and NumPy arrays without
//! copying them first, as the stdlib's does. PyO3's `PyBuffer` needs the limited API of
//! Python 3.11, and this module is built for 3.9 (abi3-py39), so it declares the two
//! functions it uses. Both, and the `Py_buffer` layout, are unchanged since Python 3.3 and
//! frozen in the stable ABI since 3.11; every CPython 3.x exports them.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::marker::PhantomData;
use std::ptr;

use pyo3::ffi::{PyObject, Py_ssize_t};
use pyo3::prelude::*;

/// `Py_buffer` (Include/pybuffer.h), field for field.
#[repr(C)]
struct RawView {
    buf: *mut c_void,
    obj: *mut PyObject,
    len: Py_ssize_t,
    itemsize: Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut Py_ssize_t,
    strides: *mut Py_ssize_t,
    suboffsets: *mut Py_ssize_t,
    internal: *mut c_void,
}

extern "C" {
    fn PyObject_GetBuffer(obj: *mut PyObject, view: *mut RawView, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawView);
}

/// A C-contiguous buffer of bytes (`PyBUF_SIMPLE`).
const PYBUF_SIMPLE: c_int = 0;
/// ... that may be written to.
const PYBUF_WRITABLE: c_int = 0x0001;
/// C-contiguous (`PyBUF_C_CONTIGUOUS`: with shape and strides), with its item format.
const PYBUF_TYPED_C_CONTIGUOUS: c_int = 0x0038 | 0x0004;

/// An exported buffer, released when dropped. While it is held the exporter keeps the
/// memory where it is (a `bytearray` refuses to resize, for instance).
///
/// Not `Send`: it must be released by a thread attached to the interpreter, and it is
/// created and dropped in the same call, so the slices it lends may cross a `detach` while
/// it stays behind.
pub struct HeldBuffer<'py> {
    view: Box<RawView>,
    _attached: PhantomData<Python<'py>>,
}

impl<'py> HeldBuffer<'py> {
    fn get(obj: &Bound<'py, PyAny>, flags: c_int) -> PyResult<Self> {
        let mut view = Box::new(RawView {
            buf: ptr::null_mut(),
            obj: ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: ptr::null_mut(),
            shape: ptr::null_mut(),
            strides: ptr::null_mut(),
            suboffsets: ptr::null_mut(),
            internal: ptr::null_mut(),
        });
        // SAFETY: `obj` is a live object (we hold a `Bound` to it and are attached, as the
        // lifetime 'py proves); `view` points to a writable `Py_buffer`-shaped struct that
        // outlives the call. On failure the exporter leaves `view` unfilled and sets an
        // exception, which `PyErr::fetch` takes.
        let status = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
        if status != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Self {
            view,
            _attached: PhantomData,
        })
    }

    /// The bytes of `obj`, which must be C-contiguous.
    pub fn readable(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        Self::get(obj, PYBUF_SIMPLE)
    }

    /// The bytes of `obj`, which must be C-contiguous and writable.
    pub fn writable(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        Self::get(obj, PYBUF_WRITABLE)
    }

    /// The C-contiguous memory of `obj` with its shape and item format (an array's); fails
    /// for a buffer that is not C-contiguous.
    pub fn typed(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        Self::get(obj, PYBUF_TYPED_C_CONTIGUOUS)
    }

    /// How many dimensions the buffer has (for a [`typed`](Self::typed) export).
    pub fn ndim(&self) -> usize {
        usize::try_from(self.view.ndim).unwrap_or(0)
    }

    /// The size of one item in bytes.
    pub fn itemsize(&self) -> usize {
        usize::try_from(self.view.itemsize).unwrap_or(0)
    }

    /// The item format in `struct` syntax (for a [`typed`](Self::typed) export; `"B"`
    /// when the exporter gave none).
    pub fn format(&self) -> &[u8] {
        if self.view.format.is_null() {
            return b"B";
        }
        // SAFETY: a non-null `format` of an export requested with `PyBUF_FORMAT` is a
        // NUL-terminated string owned by the exporter until `PyBuffer_Release` (in `drop`,
        // after every borrow of `self` ends).
        unsafe { std::ffi::CStr::from_ptr(self.view.format) }.to_bytes()
    }

    fn len(&self) -> usize {
        // A successful export has a non-negative length.
        usize::try_from(self.view.len).unwrap_or(0)
    }

    /// The buffer's bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.len() == 0 {
            return &[];
        }
        // SAFETY: a `PyBUF_SIMPLE` export is `len` contiguous bytes at `buf`, kept alive
        // and in place until `PyBuffer_Release` (in `drop`, after every borrow of `self`
        // ends). Python code in other threads could write to them meanwhile; so could
        // `os.write`'s readers, and the bytes go straight to the kernel without being
        // interpreted here.
        unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), self.len()) }
    }

    /// The buffer's bytes, to write into (a buffer obtained with [`writable`](Self::writable)).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len() == 0 || self.view.readonly != 0 {
            return &mut [];
        }
        // SAFETY: as in `as_slice`; the export was requested writable (`readonly` is 0),
        // and `&mut self` makes this the only slice lent from it.
        unsafe { std::slice::from_raw_parts_mut(self.view.buf.cast::<u8>(), self.len()) }
    }
}

impl Drop for HeldBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful `PyObject_GetBuffer` and is released
        // exactly once, here, by a thread attached to the interpreter (`HeldBuffer` is not
        // `Send` and lives within one call of Python into this module).
        unsafe { PyBuffer_Release(&mut *self.view) }
    }
}
