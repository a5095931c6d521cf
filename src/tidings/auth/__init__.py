"""Authentication: password hashes, opaque access tokens, JWTs."""

from tidings.auth.passwords import hash_password, verify_password
from tidings.auth.tokens import Authenticator, AuthError, Identity, hash_token, new_token

__all__ = ["AuthError", "Authenticator", "Identity", "hash_password", "hash_token",
           "new_token", "verify_password"]
