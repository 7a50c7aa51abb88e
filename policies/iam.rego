# IAM-style policy documents (AWS, Wasabi, MinIO) read the way AWS evaluates them: Statement
# as an object or an array; Action, NotAction, Resource, NotResource as a string or an array;
# actions matched case-insensitively, with wildcards.
package credgate.lib.iam

as_array(x) := x if is_array(x)

as_array(x) := [x] if not is_array(x)

statements(doc) := as_array(object.get(doc, "Statement", []))

is_allow(st) if lower(object.get(st, "Effect", "")) == "allow"

is_deny(st) if lower(object.get(st, "Effect", "")) == "deny"

# service_scope is what an action pattern grants all of: "*" for every service, the service
# name for "<service>:*", nothing for a named action such as s3:GetObject.
service_scope(action) := "*" if lower(action) in {"*", "*:*"}

service_scope(action) := svc if {
	contains(action, "*")
	parts := split(lower(action), ":")
	count(parts) == 2
	parts[1] != ""
	trim(parts[1], "*") == ""
	svc := parts[0]
	svc != "*"
}

# covers holds when the service scope `scope` includes service svc ("*" includes every one,
# and a pattern such as "i*" includes "iam").
covers(scope, _) if scope == "*"

covers(scope, svc) if {
	scope != "*"
	glob.match(scope, [], svc)
}

# every_resource holds when a statement applies to all resources (or all but some, with
# NotResource): "*", or an ARN ending in ":*" such as arn:aws:s3:::*.
every_resource(st) if object.get(st, "NotResource", null) != null

every_resource(st) if {
	some r in as_array(object.get(st, "Resource", []))
	r == "*"
}

every_resource(st) if {
	some r in as_array(object.get(st, "Resource", []))
	endswith(r, ":*")
}

# granted_scopes are the service scopes an Allow statement grants: "*" for NotAction (every
# action but some), else those of its Action patterns.
granted_scopes(st) := {"*"} if object.get(st, "NotAction", null) != null

granted_scopes(st) := {s | some a in as_array(object.get(st, "Action", [])); s := service_scope(a)} if {
	object.get(st, "NotAction", null) == null
}

# denied holds when an unconditional Deny of every resource takes scope back.
denied(doc, scope) if {
	some st in statements(doc)
	is_deny(st)
	object.get(st, "Condition", null) == null
	object.get(st, "NotAction", null) == null
	every_resource(st)
	some a in as_array(object.get(st, "Action", []))
	d := service_scope(a)
	covers(d, scope)
}

# admin_scopes are the scopes that make doc admin: a broad grant or an IAM grant that no Deny
# takes back. Empty means doc is not admin-scoped.
admin_scopes(doc) := {s |
	some st in statements(doc)
	is_allow(st)
	some s in granted_scopes(st)
	admin_grant(st, s)
	not denied(doc, s)
}

# admin_grant holds when an allowed scope is administrative: on every resource, or over IAM
# (which grants everything else) on any resource.
admin_grant(st, _) if every_resource(st)

admin_grant(_, scope) if {
	scope != "*"
	covers(scope, "iam")
}

# describe turns a scope into words for messages.
describe(scope) := "every action" if scope == "*"

describe(scope) := concat("", [scope, ":*"]) if scope != "*"
