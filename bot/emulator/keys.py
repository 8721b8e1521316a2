"""RSA key pairs for the demo and tests: the merchant's (signs API calls and pay params) and WeChat Pay's
platform key (signs notifies). Real deployments bring their own; these are generated on first use."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

FILES = ("merchant_private.pem", "merchant_public.pem", "platform_private.pem", "platform_public.pem")


def _pair(private_path: Path, public_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    private_path.chmod(0o600)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def ensure_keys(directory: str | Path) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "merchant_private.pem").exists() or not (d / "merchant_public.pem").exists():
        _pair(d / "merchant_private.pem", d / "merchant_public.pem")
    if not (d / "platform_private.pem").exists() or not (d / "platform_public.pem").exists():
        _pair(d / "platform_private.pem", d / "platform_public.pem")
    return d
