"""vps-ha: JSON over HTTP to Patroni's REST API, for the tools on database members.

Installed beside them (PYTHON_LIB in python-lib.ts); they import it with that directory on
sys.path.
"""
import base64
import json
import urllib.error
import urllib.request


def request(url, method="GET", body=None, auth=None, timeout=5):
    """(status, body text); status None when nothing answered. auth: (user, password) or None."""
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)
