#!/usr/bin/env python3
"""Random changes to an archive through tarkv, checked against a model and the oracles.

    kv_write.py TARKV WORKDIR SEED OPS

Starts from an archive GNU tar made, then applies OPS random operations with tarkv (put of
new and existing keys from a file and from stdin, mkdir, symlink, link, allocate,
put-partial, rm of the last member, mv in place), with long, deep and non-ASCII names,
empty and multi-MiB values.  The model is a dict of what each key should be; an operation
that tarkv refuses (exit 3) must be one the rules refuse (the model says which), and then
leaves the model as it was.  Every few operations, and at the end:
  - GNU tar -tvf lists the archive with exit 0 and nothing on stderr, and GNU tar -x
    extracts a tree equal to the model (types, contents, symlink targets, hard links);
  - bsdtar -tf and Python's tarfile read it, with the same set of paths GNU tar lists;
  - tarkv ls -R shows the model's keys, and a fresh build (--no-index) the same as the saved
    index.
Prints "ok: ..." / "FAIL: ..." lines; exit 0 when all passed, 1 otherwise.
"""
import os
import random
import shutil
import stat
import subprocess
import sys
import tarfile

TARKV, WORK, SEED, OPS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ARCHIVE = os.path.join(WORK, "rw.tar")
rnd = random.Random(SEED)
failures = 0
ENV = dict(os.environ, LC_ALL="C.UTF-8")


def ok(msg):
    print("ok: " + msg)


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def tk(*args, stdin=None):
    p = subprocess.run([TARKV, "-q"] + list(args), input=stdin, capture_output=True, env=ENV)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


# model: path -> ("file", bytes) | ("dir",) | ("symlink", target) ; links: path -> path
model = {}
# the order members were appended in (the last member, for rm and mv)
order = []


def parent_dirs(path):
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def name_part():
    kind = rnd.random()
    if kind < 0.1:
        return "ünïcødé-" + str(rnd.randrange(100))
    if kind < 0.2:
        return "long-" + "x" * rnd.randrange(60, 140)
    return rnd.choice(["a", "b", "c", "data", "lib", "bin"]) + str(rnd.randrange(6))


def new_key():
    depth = rnd.choice([1, 1, 2, 3, 6])
    return "/".join(name_part() for _ in range(depth))


def value():
    n = rnd.choice([0, 1, 100, 511, 512, 513, 10000, 3 * 2**20 + 7])
    return bytes(rnd.getrandbits(8) for _ in range(min(n, 4096))) * (n // 4096 + 1) if n else b""


def blocked(key):
    """Why the model refuses to create key: a parent that is a value."""
    for d in parent_dirs(key):
        if d in model and model[d][0] != "dir":
            return True
    return False


def add_parents(key):
    for d in parent_dirs(key):
        if d not in model:
            model[d] = ("dir",)
            order.append(d)


def resolve_file(key):
    """The bytes a key shows (following hard links in the model)."""
    return model[key]


def do_op(i):
    ops = ["put", "put", "put_stdin", "overwrite", "mkdir", "symlink", "link", "allocate",
           "partial", "rm_last", "mv_last"]
    op = rnd.choice(ops)
    if op in ("put", "put_stdin", "overwrite", "allocate"):
        files = [k for k, v in model.items() if v[0] == "file"]
        key = rnd.choice(files) if op == "overwrite" and files else new_key()
        if key in model and model[key][0] == "symlink":
            # GNU tar writes a file member through a symlink already extracted at its
            # name (1.34, default options), where the archive's last member is the file
            return True
        data = value() if op != "allocate" else b"\0" * rnd.choice([0, 1, 70000])
        if op == "allocate":
            rc, _, err = tk(ARCHIVE, "allocate", key, str(len(data)))
        elif op == "put_stdin":
            rc, _, err = tk(ARCHIVE, "put", key, "-", stdin=data)
        else:
            src = os.path.join(WORK, "value")
            with open(src, "wb") as f:
                f.write(data)
            rc, _, err = tk(ARCHIVE, "put", key, src)
        exists = key in model
        want_ok = not blocked(key) and not (exists and model[key][0] == "dir") and \
            not (op == "allocate" and exists)
        if want_ok != (rc == 0):
            fail(f"op {i}: {op} {key!r}: rc {rc}, model says {'ok' if want_ok else 'refused'}: {err.strip()}")
            return False
        if rc == 0:
            add_parents(key)
            inode[key] = i  # a new member: no longer one inode with its old links
            model[key] = ("file", data)
            order.append(key)
    elif op in ("mkdir", "symlink"):
        key = new_key()
        target = rnd.choice(["../not-there", "target-" + str(i), "ünï/l" + "y" * rnd.randrange(0, 120)])
        args = ["mkdir", key] if op == "mkdir" else ["symlink", target, key]
        rc, _, err = tk(ARCHIVE, *args)
        want_ok = not blocked(key) and key not in model
        if want_ok != (rc == 0):
            fail(f"op {i}: {op} {key!r}: rc {rc}: {err.strip()}")
            return False
        if rc == 0:
            add_parents(key)
            model[key] = ("dir",) if op == "mkdir" else ("symlink", target)
            order.append(key)
    elif op == "link":
        files = [k for k, v in model.items() if v[0] == "file"]
        if not files:
            return True
        existing, key = rnd.choice(files), new_key()
        rc, _, err = tk(ARCHIVE, "link", existing, key)
        want_ok = not blocked(key) and key not in model
        if want_ok != (rc == 0):
            fail(f"op {i}: link {existing!r} {key!r}: rc {rc}: {err.strip()}")
            return False
        if rc == 0:
            add_parents(key)
            model[key] = model[existing]  # same bytes; set_partial below keeps them linked
            inode[key] = inode[existing]
            targets.add(existing)
            order.append(key)
    elif op == "partial":
        files = [k for k, v in model.items() if v[0] == "file" and v[1]]
        if not files:
            return True
        key = rnd.choice(files)
        size = len(model[key][1])
        off = rnd.randrange(size)
        patch = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, min(64, size - off) + 1)))
        rc, _, err = tk(ARCHIVE, "put-partial", key, str(off), "-", stdin=patch)
        if rc != 0:
            fail(f"op {i}: put-partial {key!r} {off}: rc {rc}: {err.strip()}")
            return False
        data = bytearray(model[key][1])
        data[off:off + len(patch)] = patch
        for k in group(key):
            model[k] = ("file", bytes(data))
    elif op in ("rm_last", "mv_last"):
        if not order:
            return True
        last = order[-1]
        if op == "rm_last":
            rc, _, err = tk(ARCHIVE, "rm", last)
            # refused exactly when an earlier member of the name would come back, or when a
            # directory has members under it
            want_ok = order.count(last) == 1 and not any(k.startswith(last + "/") for k in model)
            if want_ok != (rc == 0) or rc not in (0, 3):
                fail(f"op {i}: rm {last!r}: rc {rc}, model says {'ok' if want_ok else 'refused'}: {err.strip()}")
                return False
            if rc == 0:
                del model[last]
                inode.pop(last, None)
                order.pop()
        else:
            dst = last + "-renamed"
            rc, _, err = tk(ARCHIVE, "mv", last, dst)
            if rc == 0:
                if model[last][0] == "dir" or order.count(last) > 1 or last in targets or \
                        dst in model:
                    fail(f"op {i}: mv {last!r} succeeded where the model expected a refusal")
                    return False
                model[dst] = model.pop(last)
                if last in inode:
                    inode[dst] = inode.pop(last)
                order[-1] = dst
            elif rc != 3:
                fail(f"op {i}: mv {last!r}: rc {rc}: {err.strip()}")
                return False
    return True


inode = {}       # file key -> the number of the operation that made its inode
targets = set()  # keys a hard link member names


def group(key):
    return {k for k, n in inode.items() if n == inode[key]}


def check(label):
    p = subprocess.run(["tar", "-tvf", ARCHIVE], capture_output=True, env=ENV)
    if p.returncode != 0 or p.stderr:
        fail(f"{label}: GNU tar -tvf: rc {p.returncode}: {p.stderr.decode(errors='replace')[:300]}")
    out = os.path.join(WORK, "x")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    p = subprocess.run(["tar", "-xf", ARCHIVE, "-C", out], capture_output=True, env=ENV)
    if p.returncode != 0:
        fail(f"{label}: GNU tar -x: {p.stderr.decode(errors='replace')[:300]}")
    got = {}
    for dp, dns, fns in os.walk(out):
        for n in dns + fns:
            full = os.path.join(dp, n)
            rel = os.path.relpath(full, out)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                got[rel] = ("dir",)
            elif stat.S_ISLNK(st.st_mode):
                got[rel] = ("symlink", os.readlink(full))
            else:
                with open(full, "rb") as f:
                    got[rel] = ("file", f.read())
    if got != model:
        missing = sorted(set(model) - set(got))[:5]
        extra = sorted(set(got) - set(model))[:5]
        wrong = sorted(k for k in set(got) & set(model) if got[k] != model[k])[:5]
        fail(f"{label}: extraction differs from the model: missing {missing}, extra {extra}, "
             f"wrong {wrong}")
    else:
        ok(f"{label}: GNU tar extracts the model ({len(model)} entries)")
    # hard links share an inode in the extraction, and only they do
    if got == model:
        seen = {}
        for k in inode:
            st = os.lstat(os.path.join(out, k)).st_ino
            seen.setdefault(inode[k], set()).add(st)
        if any(len(v) != 1 for v in seen.values()) or \
                len({next(iter(v)) for v in seen.values()}) != len(seen):
            fail(f"{label}: hard links in the extraction differ from the model")
    p = subprocess.run(["bsdtar", "-tf", ARCHIVE], capture_output=True, env=ENV)
    if p.returncode != 0:
        fail(f"{label}: bsdtar -tf: {p.stderr.decode(errors='replace')[:300]}")
    with tarfile.open(ARCHIVE) as t:
        names = {m.name.rstrip("/") for m in t.getmembers()}
    if not set(model) <= names:
        fail(f"{label}: tarfile does not list {sorted(set(model) - names)[:5]}")
    rc, kept, _ = tk(ARCHIVE, "ls", "-R", "-l", "--json")
    rc2, fresh, _ = tk("--no-index", ARCHIVE, "ls", "-R", "-l", "--json")
    if rc or rc2 or kept != fresh:
        fail(f"{label}: tarkv's saved index differs from a fresh build (rc {rc}, {rc2})")
    rc, lsout, _ = tk(ARCHIVE, "ls", "-R")
    if set(lsout.decode("utf-8", "surrogateescape").splitlines()) != set(model):
        fail(f"{label}: tarkv ls -R differs from the model")


def main():
    os.makedirs(WORK, exist_ok=True)
    src = os.path.join(WORK, "src")
    os.makedirs(os.path.join(src, "start"), exist_ok=True)
    with open(os.path.join(src, "start", "f"), "wb") as f:
        f.write(b"made by GNU tar\n")
    subprocess.run(["tar", "-C", src, "-cf", ARCHIVE, "start"], check=True)
    model["start"] = ("dir",)
    model["start/f"] = ("file", b"made by GNU tar\n")
    inode["start/f"] = -1
    order.extend(["start", "start/f"])
    for i in range(OPS):
        if not do_op(i):
            break
        if (i + 1) % 25 == 0:
            check(f"after {i + 1} operations")
    check(f"after all {OPS} operations (seed {SEED})")
    print(f"kv_write.py: {failures} failures")
    sys.exit(1 if failures else 0)


main()
