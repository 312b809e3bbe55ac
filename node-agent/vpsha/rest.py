"""vps-ha: JSON over HTTP to Patroni's REST API, and a member's patroni.yml, for the tools on database members.

The one REST client and the one reader of patroni.yml's REST settings: the switchover tool, the
dynamic-config tool and the after-promotion hook all use this module.
"""
import base64
import json
import urllib.error
import urllib.request


def request(url, method="GET", body=None, auth=None, timeout=5, context=None):
    """(status, body text); status None when nothing answered. auth: (user, password) or None;
    context: an SSL context for https (etcd's client certificate)."""
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def patroni_yml(path):
    """A member's patroni.yml, parsed: where its REST API is, and the credentials for changes."""
    # Debian's patroni depends on python3-yaml; only the tools that read the file need it
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


def rest_auth(config):
    """(user, password) for Patroni's REST API, from a parsed patroni.yml."""
    a = config["restapi"]["authentication"]
    return a["username"], a["password"]
