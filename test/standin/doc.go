// Package standin holds local stand-ins for cloud identity services, for tests that run real
// client SDKs where the cloud cannot be reached.
//
// # Entra ID (Azure workload identity)
//
// StartEntra serves, over HTTPS on 127.0.0.1, the part of the Microsoft identity platform that
// azidentity's WorkloadIdentityCredential (and so DefaultAzureCredential) uses through MSAL for
// Go: a client-credentials grant whose client authenticates with a client assertion, the
// projected service-account token of AZURE_FEDERATED_TOKEN_FILE. MSAL, given the authority
// AZURE_AUTHORITY_HOST + AZURE_TENANT_ID with instance discovery disabled, makes two calls:
//
//	GET  {authority}/v2.0/.well-known/openid-configuration
//	     MSAL requires issuer (on the authority's host), token_endpoint and authorization_endpoint
//	POST {token_endpoint} = {authority host}{tenant}/oauth2/v2.0/token, form-encoded:
//	     grant_type=client_credentials, client_id, client_info=1,
//	     client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer,
//	     client_assertion=<the token file's content>,
//	     scope="<resource>/.default openid offline_access profile"
//
// The token endpoint checks the assertion as Entra checks a federated identity credential:
// iss equal to EntraOptions.IssuerURL; the signature (RS256 or ES256) against the issuer's JSON
// Web Key Set, found through the issuer's OpenID Connect discovery document, fetched with
// EntraOptions.IssuerHTTPClient on every request; exp and nbf (five minutes' leeway); aud
// containing EntraOptions.Audience (api://AzureADTokenExchange by default); sub equal to
// EntraOptions.Subject; and the form's client_id and the path's tenant equal to the configured
// ones. It answers {"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,
// "access_token":"<random>"} and records a Grant (Entra.Grants), or refuses with Entra's error
// shape, {"error","error_description","error_codes",...}, status 400 or 401, the description
// naming the check that failed (never the assertion), and records a Refusal (Entra.Refusals).
// Anything else it is sent (instance discovery, other paths, other grants) is refused likewise.
//
// To point azidentity at it, take the pod's AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST (Entra.URL) from the environment, or from
// the options, and add only the test plumbing:
//
//	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
//		ClientOptions: azcore.ClientOptions{
//			// trust the stand-in's CA (Entra.CAPEM, Entra.CertPool): the transport MSAL's calls go through
//			Transport: entra.HTTPClient(),
//			// only when AZURE_AUTHORITY_HOST is not set to entra.URL:
//			// Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: entra.URL},
//		},
//		// otherwise MSAL first asks https://login.microsoftonline.com/common/discovery/instance
//		// whether the authority host is known, which it is not
//		DisableInstanceDiscovery: true,
//	})
//	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
//
// azidentity.NewDefaultAzureCredential with the same two options in its
// DefaultAzureCredentialOptions makes the same two calls. MSAL caches the access token: a second
// GetToken on the same credential sends nothing.
//
// For a cluster's service accounts, IssuerURL is the API server's --service-account-issuer
// (envtest's is "https://127.0.0.1:PORT/", trailing slash included, and signs ES256), whose
// /.well-known/openid-configuration and /openid/v1/jwks must be readable by IssuerHTTPClient:
// trust the cluster's CA, and bind system:service-account-issuer-discovery to the caller (for
// instance to system:unauthenticated), as clusters that federate do.
//
// # Google Security Token Service (GCP workload identity federation)
//
// StartGoogleSTS serves, over HTTPS on 127.0.0.1, the two calls golang.org/x/oauth2/google's
// external_account credentials make for an OpenID Connect workload identity pool provider
// whose credential source is a file, the projected service-account token:
//
//	POST {token_url} = {GoogleSTS.URL}v1/token, as sts.googleapis.com/v1/token, form-encoded:
//	     grant_type=urn:ietf:params:oauth:grant-type:token-exchange,
//	     audience=<the config's audience>, scope=<the scopes, space-separated>,
//	     requested_token_type=urn:ietf:params:oauth:token-type:access_token,
//	     subject_token_type=urn:ietf:params:oauth:token-type:jwt,
//	     subject_token=<the token file's content, trimmed>
//	     (and an x-goog-api-client header; no client authentication)
//	POST {service_account_impersonation_url} =
//	     {GoogleSTS.URL}v1/projects/-/serviceAccounts/{email}:generateAccessToken,
//	     as iamcredentials.googleapis.com, only when the config has that URL, with
//	     Authorization: Bearer <the federated access token> and the JSON body
//	     {"lifetime":"3600s","scope":[<the scopes>]}
//
// When it impersonates, x/oauth2 asks the token exchange for
// https://www.googleapis.com/auth/cloud-platform, and the service account for the scopes.
//
// The token exchange checks the audience against GoogleSTSOptions.Audience, the provider's full
// resource name (invalid_target), then the subject token as Google checks one for an OIDC
// provider: iss, signature (RS256 or ES256, keys found through the issuer's discovery document)
// and lifetime as for Entra (invalid_grant); aud containing GoogleSTSOptions.TokenAudience or,
// by default, as for a provider without allowed audiences, the provider's name with or without
// "https:" (invalid_grant); and sub equal to GoogleSTSOptions.Subject, as an attribute condition
// would (unauthorized_client). It answers {"access_token":"<random>","issued_token_type":
// "urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}, or
// refuses with status 400 and {"error","error_description"}, the description naming the check
// that failed, never the token. generateAccessToken requires an unexpired access token the
// stand-in issued, with the cloud-platform scope (401, 403): the token exchange's, for the one
// GoogleSTSOptions.ServiceAccountEmail, or a service account's (below), for the accounts
// GoogleSTSOptions.Impersonates grants it (403, naming iam.serviceAccounts.getAccessToken
// otherwise); a body {"scope":[...],"lifetime":"<at most 3600>s"}, without delegates (400); and
// answers {"accessToken":"<random>","expireTime":"<RFC 3339>"}, or refuses as Google APIs do,
// {"error":{"code","message","status"}}. Every endpoint records a GoogleGrant (GoogleSTS.Grants)
// or a Refusal (GoogleSTS.Refusals); a GoogleGrant's Principal is the service account that
// authenticated, empty for a federated principal.
//
// To point x/oauth2 at it, write the credential configuration gcloud iam workload-identity-pools
// create-cred-config writes, with the stand-in's URLs:
//
//	{"type": "external_account",
//	 "audience": "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ml/providers/k8s",
//	 "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
//	 "token_url": "<sts.URL>v1/token",
//	 "credential_source": {"file": "/var/run/service-account/token"},
//	 "service_account_impersonation_url": "<sts.URL>v1/projects/-/serviceAccounts/<email>:generateAccessToken"}
//
// (x/oauth2 v0.37.0 does not check that these URLs are Google's), and add only the test plumbing,
// the client trusting the stand-in's CA:
//
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, sts.HTTPClient())
//	creds, err := google.CredentialsFromJSONWithType(ctx, config, google.ExternalAccount,
//		"https://www.googleapis.com/auth/cloud-platform")
//	tok, err := creds.TokenSource.Token()
//
// or, from GOOGLE_APPLICATION_CREDENTIALS naming that file, google.FindDefaultCredentials(ctx,
// scopes...) with the same ctx. The token source keeps that ctx for every later call, and
// caches the token until it is near its expiry.
//
// # Google service account keys, impersonation and token info
//
// The same server serves, as oauth2.googleapis.com does, the OAuth 2.0 token endpoint that
// golang.org/x/oauth2/google's service_account credentials (golang.org/x/oauth2/jwt) call, with
// the key file's token_uri, GoogleSTS.TokenURI = {GoogleSTS.URL}token:
//
//	POST {token_uri}, form-encoded: grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer,
//	     assertion=<JWT, header {"alg":"RS256","typ":"JWT","kid":<private_key_id>}, claims
//	     {"iss":<client_email>,"scope":<the scopes, space-separated>,"aud":<token_uri>,
//	     "exp":<iat+3600>,"iat":<now-10s>}, signed with private_key>
//
// It checks the assertion as Google does: alg RS256, signed by a key registered for iss
// (GoogleSTSOptions.ServiceAccountKeys, GoogleSTS.AddServiceAccountKey) and, when the header
// has kid, by the key of that private_key_id ("Invalid grant: account not found", "Invalid JWT
// Signature."); aud exactly the token URI ("Failed audience check"); iat and exp present, exp
// after iat by at most an hour, not expired and not issued in the future, with five minutes'
// leeway ("Token must be a short-lived token (60 minutes)..."), all invalid_grant; no sub
// (domain-wide delegation; unauthorized_client); scope non-empty, of Google OAuth scopes
// (invalid_scope). It answers {"access_token":"<random>","expires_in":3599,"token_type":"Bearer"},
// or refuses with status 400 and {"error","error_description"} (also unsupported_grant_type for
// another grant_type, invalid_request for a missing or repeated parameter), the description
// Google's followed by what failed, never the assertion.
//
// NewServiceAccountKey generates a key and its JSON key file, as Google writes one, with
// token_uri the stand-in's. With that file, the credentials need only the test plumbing:
//
//	keyJSON, key, err := standin.NewServiceAccountKey("source@ml-project.iam.gserviceaccount.com", sts.TokenURI())
//	err = sts.AddServiceAccountKey(key)
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, sts.HTTPClient())
//	creds, err := google.CredentialsFromJSONWithType(ctx, keyJSON, google.ServiceAccount,
//		"https://www.googleapis.com/auth/cloud-platform")
//	tok, err := creds.TokenSource.Token()
//
// That access token, as Authorization: Bearer, authorizes generateAccessToken for the service
// accounts GoogleSTSOptions.Impersonates lets the source impersonate (so does one of theirs, for
// those they may impersonate in turn).
//
// Token info, as https://oauth2.googleapis.com/tokeninfo:
//
//	GET  {GoogleSTS.URL}tokeninfo?access_token=TOKEN
//	POST {GoogleSTS.URL}tokeninfo, form-encoded access_token=TOKEN
//
// answers, for an unexpired access token of a service account's the stand-in issued (from
// POST /token or generateAccessToken), {"azp","aud" (the account's unique ID, its key file's
// client_id),"scope","exp" (Unix seconds),"expires_in" (seconds left),"email" (the account's),
// "email_verified":"true","access_type":"online"}, every value a string, as Google's; for any
// other token, a federated one included, 400 {"error":"invalid_token","error_description":
// "Invalid Value"}. The stand-in remembers at most 1000 access tokens, forgetting expired ones
// first.
package standin
