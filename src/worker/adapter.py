"""poolscope's Python adapter: serves one Python function as a persistent worker.

poolscope runs it as `python3 -c <this source> FILE.py:FUNCTION [FILE.py:INIT]` in the task
directory. It loads FUNCTION (and INIT, called once with no arguments), writes
{"ready": true} to fd 4, then reads items {"id": 7, "input": ...} from fd 3 one line at a
time and, in order, writes one reply each to fd 4: {"id": 7, "start_ns": ..., "end_ns": ...,
"ok": <result as JSON>} or {..., "error": "<traceback>"}. EOF on fd 3 ends it (status 0).

Anything the function raises becomes that item's error, SystemExit and KeyboardInterrupt
included: one bad item never takes the worker down. stdout and stderr are flushed before
each reply, so an item's prints reach poolscope ahead of its reply.

`python3 -c <this source> --check FILE.py:FUNCTION [FILE.py:INIT]` is how poolscope checks
a task directory as it loads it: it loads FUNCTION and INIT as a worker would (INIT is not
called), writes one JSON line to stdout, {"ok": true} or {"spec": ..., "stage": "import" or
"lookup", "error": <the traceback's last line>, "traceback": ..., "suggestion": ...}, and
exits 0 or 1. What the module prints as it is imported goes to stderr.
"""

import importlib.machinery
import importlib.util
import json
import os
import sys
import time
import traceback


def load(spec, modules):
    """The callable named by `file.py:function`; `modules` caches files already loaded."""
    path, _, name = spec.rpartition(":")
    return look_up(load_module(path, modules), path, name, spec)


def load_module(path, modules):
    """The module of file `path`, run on its first load; `modules` caches it."""
    full = os.path.abspath(path)
    module = modules.get(full)
    if module is None:
        folder = os.path.dirname(full)
        if not sys.path or sys.path[0] != folder:
            sys.path.insert(0, folder)
        module_name = os.path.splitext(os.path.basename(full))[0]
        loader = importlib.machinery.SourceFileLoader(module_name, full)
        module_spec = importlib.util.spec_from_file_location(module_name, full, loader=loader)
        module = importlib.util.module_from_spec(module_spec)
        # Registered before it runs, as `import` does, so pickle and dataclasses find it.
        sys.modules[module_name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        modules[full] = module
    return module


def look_up(module, path, name, spec):
    """The callable `name` of `module` (loaded from `path`)."""
    try:
        function = getattr(module, name)
    except AttributeError:
        raise AttributeError(f"{path} has no attribute {name!r}") from None
    if not callable(function):
        kind = type(function).__name__
        article = "an" if kind[:1] in "aeiou" else "a"
        raise TypeError(f"{spec} is {article} {kind}, not a function")
    return function


def user_traceback(e):
    """The traceback of `e` from the first frame that is not the adapter's or importlib's."""
    tb = e.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == "<string>"
        or tb.tb_frame.f_code.co_filename.startswith("<frozen ")
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def fail(message):
    """Say why the worker cannot start, with the traceback, and exit 1 (never ready)."""
    sys.stdout.flush()
    print(f"poolscope worker: {message}", file=sys.stderr)
    print(user_traceback(sys.exc_info()[1]), end="", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(1)


def check(specs):
    """`--check`: load each of `specs` as `main` does, without calling INIT; say how it went
    on stdout, as one JSON line, and exit 0 if every one loaded, else 1."""
    sys.stdout.flush()
    answer = os.fdopen(os.dup(1), "w")
    # What the module prints as it runs goes to stderr, never into the answer.
    os.dup2(2, 1)
    modules = {}
    for spec in specs:
        path, _, name = spec.rpartition(":")
        stage, module = "import", None
        try:
            module = load_module(path, modules)
            stage = "lookup"
            look_up(module, path, name, spec)
        except BaseException as e:
            sys.stdout.flush()
            sys.stderr.flush()
            last = traceback.format_exception_only(type(e), e)[-1].rstrip("\n")
            close = []
            if module is not None:
                import difflib  # only here: workers start without it

                names = [n for n, v in vars(module).items() if callable(v) and n[:1] != "_"]
                close = difflib.get_close_matches(name, names, n=1)
            report = {
                "spec": spec,
                "stage": stage,
                "error": last,
                "traceback": user_traceback(e),
                "suggestion": close[0] if close else None,
            }
            answer.write(json.dumps(report) + "\n")
            answer.flush()
            # At once: the user's atexit handlers are not the check's to run.
            os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    answer.write('{"ok": true}\n')
    answer.flush()
    os._exit(0)


def serve(function, items, replies):
    """Answer items from `items` (binary, by lines) on `replies` (an fd) until EOF."""
    loads = json.loads
    dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
    monotonic_ns = time.monotonic_ns
    write = os.write
    format_exception = traceback.format_exception
    encode_error = json.JSONEncoder().encode
    flush_out = sys.stdout.flush
    flush_err = sys.stderr.flush
    ok_reply = '{"id":%d,"start_ns":%d,"end_ns":%d,"ok":%s}\n'
    error_reply = '{"id":%d,"start_ns":%d,"end_ns":%d,"error":%s}\n'

    for line in items:
        if line.isspace():
            continue
        msg = loads(line)
        input_ = msg["input"]
        t0 = monotonic_ns()
        try:
            result = function(input_)
            t1 = monotonic_ns()
        except BaseException as e:
            t1 = monotonic_ns()
            # The traceback from the function's own frame down, without the adapter's.
            tb = e.__traceback__.tb_next
            text = "".join(format_exception(type(e), e, tb))
            reply = error_reply % (msg["id"], t0, t1, encode_error(text))
        else:
            if result is None:
                reply = ok_reply % (msg["id"], t0, t1, "null")
            else:
                try:
                    reply = ok_reply % (msg["id"], t0, t1, dumps(result))
                except (TypeError, ValueError, RecursionError) as e:
                    text = (
                        f"the result is not JSON: {type(result).__name__} "
                        f"({type(e).__name__}: {e})"
                    )
                    reply = error_reply % (msg["id"], t0, t1, encode_error(text))
        flush_out()
        flush_err()
        data = reply.encode()
        written = write(replies, data)
        while written < len(data):
            data = data[written:]
            written = write(replies, data)


def main():
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--check":
        check(sys.argv[2:])
    if len(sys.argv) not in (2, 3):
        print(
            "usage: python3 -c ADAPTER FILE.py:FUNCTION [FILE.py:INIT]"
            " (poolscope starts this itself)",
            file=sys.stderr,
        )
        sys.exit(2)
    for fd, role in ((3, "items"), (4, "replies")):
        try:
            os.fstat(fd)
        except OSError:
            print(
                f"poolscope worker: fd {fd} ({role}) is not open;"
                " the adapter must be started by poolscope",
                file=sys.stderr,
            )
            sys.exit(2)

    modules = {}
    spec = sys.argv[1]
    try:
        function = load(spec, modules)
    except BaseException:
        fail(f"cannot load {spec}")
    if len(sys.argv) == 3:
        init_spec = sys.argv[2]
        try:
            init = load(init_spec, modules)
        except BaseException:
            fail(f"cannot load {init_spec}")
        try:
            init()
        except BaseException:
            fail(f"init {init_spec} raised")

    # Processes the function starts must not hold the protocol's pipes open.
    os.set_inheritable(3, False)
    os.set_inheritable(4, False)
    items = os.fdopen(3, "rb")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(4, b'{"ready":true}\n')
        serve(function, items, 4)
    except BrokenPipeError:
        # poolscope stopped reading replies: nobody is left to tell, so go quietly.
        os._exit(0)
    except KeyboardInterrupt:
        os._exit(130)
    # EOF on fd 3: a normal exit (status 0), which runs the user's atexit handlers.


main()
