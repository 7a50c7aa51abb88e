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
package standin
