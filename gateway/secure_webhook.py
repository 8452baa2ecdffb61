"""Azure Monitor secure webhooks: the action group presents an Entra ID token
instead of a secret in the URL. Accepted only when it was issued by our tenant,
for our app, to Azure Monitor's action-group service principal, carrying the
app role the docs' setup script assigns to it."""

from __future__ import annotations

from typing import Any

from stanch.gateway.identity import IssuerKeys, TokenRefused, verify_jwt

# The first-party app "AzNS AAD Webhook" that action groups sign in as.
ACTION_GROUPS_APP_ID = "461e8683-5575-4561-ac7f-899cc907d62a"
WEBHOOK_ROLE = "ActionGroupsSecureWebhook"


class SecureWebhook:
    def __init__(self, tenant_id: str, audiences: list[str], authority: str) -> None:
        authority = authority.rstrip("/")
        self.tenant_id, self.audiences = tenant_id, audiences
        self.keys = IssuerKeys(jwks_uri=f"{authority}/{tenant_id}/discovery/v2.0/keys")
        # v2.0 tokens (the docs advise them) and v1.0 tokens, whose issuer is
        # always sts.windows.net.
        self.issuers = [f"{authority}/{tenant_id}/v2.0", f"https://sts.windows.net/{tenant_id}/"]

    async def check(self, token: str) -> dict[str, Any]:
        claims = await verify_jwt(token, self.keys, issuers=self.issuers, audiences=self.audiences)
        if claims.get("tid", self.tenant_id) != self.tenant_id:
            raise TokenRefused("token is from another tenant")
        caller = claims.get("azp") or claims.get("appid")
        if caller != ACTION_GROUPS_APP_ID:
            raise TokenRefused("token was not issued to Azure Monitor action groups", 403)
        if WEBHOOK_ROLE not in (claims.get("roles") or []):
            raise TokenRefused(f"token lacks the app role {WEBHOOK_ROLE}", 403)
        return claims
