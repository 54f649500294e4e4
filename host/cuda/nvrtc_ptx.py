#!/usr/bin/env python3
"""Compiles one CUDA C++ file to PTX with NVRTC (no GPU, no nvcc needed).

    nvrtc_ptx.py LIBNVRTC SOURCE.cu OUT.ptx [NVRTC OPTION...]

LIBNVRTC is the path of libnvrtc.so.12 (scripts/build-ptx.sh passes the pinned one from the
nvidia-cuda-nvrtc-cu12 wheel). NVRTC is the CUDA C++ front end and NVVM back end that nvcc
itself runs for device code, so its PTX is what `nvcc --ptx` writes for the same options.
The compiler log goes to stderr; the exit status is 1 on any NVRTC error.
"""

import ctypes
import sys


def check(lib, result, what, prog=None):
    """Exits with NVRTC's message (and the compile log, when there is one) on an error."""
    if result == 0:
        return
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    message = lib.nvrtcGetErrorString(result).decode()
    if prog is not None:
        log = program_log(lib, prog)
        if log:
            sys.stderr.write(log)
    sys.exit(f"nvrtc_ptx: {what}: {message} ({result})")


def program_log(lib, prog):
    size = ctypes.c_size_t()
    if lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) != 0 or size.value <= 1:
        return ""
    buf = ctypes.create_string_buffer(size.value)
    if lib.nvrtcGetProgramLog(prog, buf) != 0:
        return ""
    return buf.value.decode(errors="replace")


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    libpath, source, out = argv[1], argv[2], argv[3]
    options = [o.encode() for o in argv[4:]]
    lib = ctypes.CDLL(libpath)
    with open(source, "rb") as f:
        text = f.read()
    # The name appears in diagnostics only; the base name keeps the PTX free of local paths.
    name = source.rsplit("/", 1)[-1].encode()
    prog = ctypes.c_void_p()
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), text, name, 0, None, None), "create")
    opts = (ctypes.c_char_p * len(options))(*options)
    check(lib, lib.nvrtcCompileProgram(prog, len(options), opts), f"compiling {source}", prog)
    log = program_log(lib, prog)
    if log.strip():
        sys.stderr.write(log)
    size = ctypes.c_size_t()
    check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "PTX size")
    buf = ctypes.create_string_buffer(size.value)
    check(lib, lib.nvrtcGetPTX(prog, buf), "PTX")
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    with open(out, "wb") as f:
        f.write(buf.value)


if __name__ == "__main__":
    main(sys.argv)
