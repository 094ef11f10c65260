"""The test bed's stand-ins for the Deis v1 controller's Key, App and Domain models.

The objects come from CONTROLLER_STATE, JSON as
    {"keys": [{"owner": "alice", "id": "alice@laptop", "public": "ssh-rsa AAAA..."}],
     "apps": [{"id": "blog", "owner": "alice", "structure": {"web": 2}}],
     "domains": [{"app": "blog", "domain": "blog.example.com"}]}
and `save()` publishes each to etcd over the v2 keys API, as Deis's post-save hooks do:
    Key    -> PREFIX/builder/users/OWNER/FINGERPRINT = the public key
    App    -> PREFIX/services/APP (a directory)
    Domain -> PREFIX/domains/DOMAIN = the app
ETCD is the etcd address (host:port as Deis sets it, or a URL); DEIS_ETCD_PREFIX the
keyspace (default /deis, which tests replace with a prefix of their own).
"""
import base64
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 10


def _etcd_url(key, query=""):
    address = os.environ["ETCD"]
    if "://" not in address:
        address = "http://" + address
    prefix = os.environ.get("DEIS_ETCD_PREFIX", "/deis").rstrip("/")
    path = urllib.parse.quote(prefix + key)
    return "%s/v2/keys%s%s" % (address.rstrip("/"), path, query)


def _etcd_write(key, value=None, directory=False):
    if directory:
        data = urllib.parse.urlencode({"dir": "true", "prevExist": "false"}).encode()
    else:
        data = urllib.parse.urlencode({"value": value}).encode()
    request = urllib.request.Request(_etcd_url(key), data=data, method="PUT")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        urllib.request.urlopen(request, timeout=TIMEOUT).read()
    except urllib.error.HTTPError as e:
        # an existing directory stays as it is (etcd error 105: key already exists)
        body = json.loads(e.read().decode() or "{}")
        if not (directory and body.get("errorCode") == 105):
            raise


def fingerprint(public):
    """Deis's fingerprint of an SSH public key: colon-separated MD5 of its key bytes."""
    raw = base64.b64decode(public.strip().split()[1].encode("ascii"))
    digest = hashlib.md5(raw).hexdigest()
    return ":".join(a + b for a, b in zip(digest[::2], digest[1::2]))


class Manager(object):
    def __init__(self, model, section):
        self.model = model
        self.section = section

    def all(self):
        state = json.loads(os.environ.get("CONTROLLER_STATE") or "{}")
        return [self.model(**fields) for fields in state.get(self.section, [])]

    def count(self):
        return len(self.all())


class Key(object):
    def __init__(self, owner, id, public):
        self.owner, self.id, self.public = owner, id, public

    def save(self):
        _etcd_write("/builder/users/%s/%s" % (self.owner, fingerprint(self.public)), self.public)


class App(object):
    def __init__(self, id, owner="admin", structure=None):
        self.id, self.owner, self.structure = id, owner, structure or {}

    def save(self):
        _etcd_write("/services/%s" % self.id, directory=True)


class Domain(object):
    def __init__(self, app, domain):
        self.app, self.domain = app, domain

    def save(self):
        _etcd_write("/domains/%s" % self.domain, self.app)


Key.objects = Manager(Key, "keys")
App.objects = Manager(App, "apps")
Domain.objects = Manager(Domain, "domains")
