#!/usr/bin/env python3
"""manage.py of the test bed's deis-controller stand-in: the Django management commands that
`deis-backup restore finish` runs, behaving as Deis v1's controller (Django 1.6-1.9) does
where it matters to it.

  help COMMAND            exit 0 for a command this controller has; otherwise Django's
                          "Unknown command: 'COMMAND'" on stderr and exit 1
  load_db_state_to_etcd   only when CONTROLLER_DEIS_VERSION is 1.11 or later: save every
                          model, so each publishes itself to etcd again
  shell [--plain]         a plain interactive console (code.InteractiveConsole, as Django's
                          shell without IPython) reading statements from stdin, prompts on
                          stdout, with the models importable as api.models

Environment: CONTROLLER_DEIS_VERSION (default 1.13), and what api/models.py reads.
"""
import code
import sys

COMMANDS = ["help", "shell"]


def deis_version():
    import os
    text = os.environ.get("CONTROLLER_DEIS_VERSION", "1.13")
    return tuple(int(part) for part in text.lstrip("v").split(".")[:2])


def commands():
    if deis_version() >= (1, 11):
        return COMMANDS + ["load_db_state_to_etcd"]
    return COMMANDS


def unknown(name):
    sys.stderr.write("Unknown command: %r\nType 'manage.py help' for usage.\n" % name)
    sys.exit(1)


def load_db_state_to_etcd():
    from api.models import App, Domain, Key
    print("Publishing DB state to etcd...")
    for model in (App, Domain, Key):
        for obj in model.objects.all():
            obj.save()
    print("Done Publishing DB state to etcd.")


def shell(args):
    if any(arg not in ("--plain",) for arg in args):
        sys.stderr.write("manage.py shell: error: unrecognized arguments: %s\n" % " ".join(args))
        sys.exit(2)
    code.InteractiveConsole(locals={"__name__": "__console__"}).interact(
        banner="Python %s (deis-controller stand-in)" % sys.version.split()[0], exitmsg=""
    )


def main(argv):
    if not argv:
        sys.stdout.write("Available subcommands:\n  %s\n" % "\n  ".join(commands()))
        return
    name, args = argv[0], argv[1:]
    if name not in commands():
        unknown(name)
    if name == "help":
        if args and args[0] not in commands():
            unknown(args[0])
        sys.stdout.write("Usage: manage.py %s [options]\n" % (args[0] if args else "subcommand"))
    elif name == "load_db_state_to_etcd":
        load_db_state_to_etcd()
    elif name == "shell":
        shell(args)


if __name__ == "__main__":
    main(sys.argv[1:])
