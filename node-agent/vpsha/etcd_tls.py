"""vps-ha: how the tools reach etcd, which admits only clients with a certificate from the stack's CA.

The file paths come from the caller's arguments or config (components/render/etcd.ts decides them:
ETCD_TLS_FILES); this module only turns them into an SSL context or etcdctl's flags, and parses
the arguments and runs the main of a tool that asks etcd with them.
"""
import ssl
import sys

# The tools' arguments that name the files, in this order.
ARGS = ("--cacert", "--cert", "--key")


def split_args(argv):
    """(argv without `--cacert F --cert F --key F`, (cacert, cert, key)); raises ValueError when any is missing."""
    rest, files = [], {}
    i = 0
    while i < len(argv):
        if argv[i] in ARGS and i + 1 < len(argv):
            files[argv[i]] = argv[i + 1]
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    missing = [a for a in ARGS if not files.get(a)]
    if missing:
        raise ValueError("missing %s" % " ".join(missing))
    return rest, tuple(files[a] for a in ARGS)


def context(files):
    """An SSL context that trusts the etcd CA alone and shows this node's certificate; files: (cacert, cert, key)."""
    cacert, cert, key = files
    ctx = ssl.create_default_context(cafile=cacert)
    ctx.load_cert_chain(cert, key)
    return ctx


def etcdctl_flags(files):
    """etcdctl's flags for the same files."""
    return ["%s=%s" % (a, f) for a, f in zip(ARGS, files, strict=True)]


def parse_options(argv, options):
    """
    A tool's arguments: each of `options` once, in that order, with a value (the last a whole
    number, as --wait is), besides the TLS files. ({option without "--", "-" as "_": value}, the
    files); ValueError otherwise.
    """
    argv, files = split_args(argv)
    if len(argv) != 2 * len(options) or tuple(argv[0::2]) != options or not argv[-1].isdigit():
        raise ValueError("bad arguments")
    return dict(zip((o[2:].replace("-", "_") for o in options), argv[1::2], strict=True)), files


def tool_main(argv, doc, parse, act, log, errors=()):
    """
    The main of a tool that asks etcd with this node's certificate: its usage line (the last of
    `doc`) and 2 on bad arguments; 1 when `act(args, ssl context)` fails (logged); else 0.
    """
    try:
        args, files = parse(argv)
    except ValueError:
        print(doc.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        act(args, context(files))
    except (OSError, ValueError, *errors) as err:
        log("FAILED: %s" % err)
        return 1
    return 0
