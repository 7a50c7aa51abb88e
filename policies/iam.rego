# IAM-style policy documents (AWS, Wasabi, MinIO) read the way AWS evaluates them: Statement
# as an object or an array; Action, NotAction, Resource, NotResource as a string or an array;
# actions matched case-insensitively, actions and resources as globs (* any run of characters,
# ? one character).
#
# admin_grants(doc) is what makes doc administrative. Where the reading cannot be exact it errs
# towards admin: a grant counts when it may be broad, a Deny takes a grant back only when it
# surely covers it. Every helper is linear in the size of the document: the Denies are read
# once into a set of keys, and each grant is looked up in it. admin_role(role) says why a role
# of AWS, Azure, GCP or Kubernetes is administrative.
#
# Public (docs/policies.md): admin_grants, admin_scopes, summary, admin_role, statements,
# every_arn. The other rules are the reading's internals. The package is reserved: no user
# policy may declare it.
package credgate.lib.iam

as_array(x) := x if is_array(x)

else := [x]

# statements are the statement objects of doc.
statements(doc) := [st | some st in as_array(object.get(doc, "Statement", [])); is_object(st)]

# has holds when statement st sets field.
has(st, field) if object.get(st, field, null) != null

# members are the strings of statement st's field, [] when it is unset.
members(st, field) := [s | some s in as_array(object.get(st, field, [])); is_string(s)]

# lowered are the same, lower case: what actions are compared as.
lowered(st, field) := [lower(s) | some s in as_array(object.get(st, field, [])); is_string(s)]

effect(st) := lower(e) if {
	e := object.get(st, "Effect", "")
	is_string(e)
}

is_allow(st) if effect(st) == "allow"

is_deny(st) if effect(st) == "deny"

# unconditional holds for a statement without a Condition (or with an empty one).
unconditional(st) if object.get(st, "Condition", {}) in {null, {}}

# --- Patterns ---------------------------------------------------------------------------------

# quoted escapes what OPA's glob syntax reads specially and IAM does not ([ ] { } \), so that
# glob.match reads an IAM pattern as IAM does: * and ? only.
quoted(p) := strings.replace_n({"\\": "\\\\", "[": "\\[", "]": "\\]", "{": "\\{", "}": "\\}"}, p)

wildcard(p) if contains(p, "*")

wildcard(p) if contains(p, "?")

# any_name holds for a pattern of * and ? alone that matches every non-empty string: a * and at
# most one ?.
any_name(w) if {
	contains(w, "*")
	trim(w, "*?") == ""
	strings.count(w, "?") <= 1
}

# every_action holds for an action pattern matching every action: "*", "*:*", "?*", "**".
every_action(p) if any_name(p)

every_action(p) if {
	contains(p, "*")
	parts := split(p, ":")
	count(parts) == 2
	any_name(parts[0])
	any_name(parts[1])
}

# service_of is the service pattern whose every action p matches: "s3" for "s3:*" or "s3:?*",
# "i?m" for "i?m:*", "iam*" for "iam*". Undefined for a named action (s3:GetObject), a part of
# a service (s3:Get*) and every action.
service_of(p) := s if {
	contains(p, "*")
	parts := split(p, ":")
	count(parts) == 2
	any_name(parts[1])
	s := parts[0]
	s != ""
	not any_name(s)
}

service_of(p) := concat("", [t, "*"]) if {
	contains(p, "*")
	not contains(p, ":")
	t := trim_right(p, "*?")
	t != ""
	not wildcard(t)
	contains(substring(p, count(t), -1), "*")
}

# covers_iam holds for an action pattern that matches every IAM action (iam:*, i?m:*, *).
covers_iam(p) if every_action(p)

covers_iam(p) if service_of(p) == "iam"

covers_iam(p) if {
	s := service_of(p)
	wildcard(s)
	glob.match(quoted(s), null, "iam")
}

# escalation_actions are the actions that grant their holder more than they hold — new
# permissions, credentials or identities — by lower-case name. Allowed on every resource, or
# every role, user or policy of an account, they are admin.
escalation_actions := {
	"iam:passrole": "iam:PassRole",
	"iam:putuserpolicy": "iam:PutUserPolicy",
	"iam:putrolepolicy": "iam:PutRolePolicy",
	"iam:putgrouppolicy": "iam:PutGroupPolicy",
	"iam:attachuserpolicy": "iam:AttachUserPolicy",
	"iam:attachrolepolicy": "iam:AttachRolePolicy",
	"iam:attachgrouppolicy": "iam:AttachGroupPolicy",
	"iam:createaccesskey": "iam:CreateAccessKey",
	"iam:createloginprofile": "iam:CreateLoginProfile",
	"iam:updateloginprofile": "iam:UpdateLoginProfile",
	"iam:createpolicyversion": "iam:CreatePolicyVersion",
	"iam:setdefaultpolicyversion": "iam:SetDefaultPolicyVersion",
	"iam:updateassumerolepolicy": "iam:UpdateAssumeRolePolicy",
	"iam:addusertogroup": "iam:AddUserToGroup",
	"sts:assumerole": "sts:AssumeRole",
}

# may_be_admin matches a statement's Action, as lower-case JSON, when one of its actions has a
# wildcard or is an escalation action: a few built-in calls per statement, however many actions
# it names (most statements name theirs, and grant nothing admin).
may_be_admin := sprintf(`[*?]|"(%s)"`, [concat("|", escalation_names)])

escalation_names := object.keys(escalation_actions)

# escalations_of are the escalation actions action pattern p (lower case) matches. What p has
# before its first wildcard must begin one of them ("iam:put", "s", ""): most patterns are ruled
# out before any glob is compiled.
escalations_of(p) := {e | some e, _ in escalation_actions; glob.match(quoted(p), null, e)} if {
	wildcard(p)
	strings.any_prefix_match(escalation_names, regex.split(`[*?]`, p)[0])
}

else := {p} if escalation_actions[p]

else := set()

# every_arn holds for a resource pattern that matches every ARN
# (arn:partition:service:region:account:resource, whatever each is): "*", "arn*", "?*",
# "arn:*", "arn:*:*", "*:*". The pattern is a head matching a prefix of "arn:" and a rest of
# wildcards: colons each of whose parts has a * (at most as many colons as an ARN is sure to
# have after the head), or * and at most one ? without colons.
every_arn("*")

every_arn(r) if {
	trim(r, "arn:*?") == "" # cheap first: real ARNs have other letters
	r != "*"
	some k in numbers.range(0, 4)
	head := substring(r, 0, k)
	count(head) == k
	not contains(head, "*")
	glob.match(quoted(head), null, substring("arn:", 0, k))
	arn_rest(substring(r, k, -1), k)
}

arn_rest(rest, _) if any_name(rest)

arn_rest(rest, k) if {
	contains(rest, ":")
	trim(rest, "*:") == ""
	every part in split(rest, ":") {
		contains(part, "*")
	}
	strings.count(rest, ":") <= arn_colons(k)
}

# arn_colons is how many colons every ARN has after its first k characters.
arn_colons(k) := 4 if k == 4

arn_colons(k) := 5 if k < 4

# wide holds for a resource pattern an Allow is read as granting every resource with: one
# matching every ARN, or every resource of a service ("arn:aws:s3:::*": a pattern ending in a
# colon and wildcards).
wide(r) if every_arn(r)

wide(r) if {
	t := trim_right(r, "*?")
	endswith(t, ":")
	contains(substring(r, count(t), -1), "*")
}

# could_be_iam holds for a resource pattern that may match an IAM resource: its service field
# may be "iam".
could_be_iam(r) if {
	contains(r, "*")
	count(split(substring(r, 0, indexof(r, "*")), ":")) <= 3
}

could_be_iam(r) if {
	fields := split(substring(r, 0, indexof(r, "*")), ":")
	count(fields) > 3
	glob.match(quoted(lower(fields[2])), null, "iam")
}

# all_of_a_kind holds for a resource pattern matching every role, user, group or policy of an
# account: "arn:aws:iam::123456789012:role/*".
all_of_a_kind(r) if {
	t := trim_right(r, "*?")
	contains(substring(r, count(t), -1), "*")
	endswith(t, "/")
	count(split(t, "/")) == 2
}

# --- Allow --------------------------------------------------------------------------------------

everywhere := {"every": true, "iam": "every resource", "kind": "every resource"}

# targets says what an Allow applies to: every resource (a wide Resource, or NotResource that
# does not exclude every ARN), or else its least Resource pattern that may be an IAM resource
# ("iam") and that covers all of a kind ("kind"), "" when none.
targets(st) := everywhere if wide_grant(st)

else := {"every": false, "iam": least(iam), "kind": least({r | some r in iam; all_of_a_kind(r)})} if {
	iam := {r | some r in members(st, "Resource"); could_be_iam(r)}
}

wide_grant(st) if {
	has(st, "NotResource")
	not excludes_every_arn(st)
}

wide_grant(st) if {
	not has(st, "NotResource")
	some r in members(st, "Resource")
	wide(r)
}

excludes_every_arn(st) if {
	some r in members(st, "NotResource")
	every_arn(r)
}

least(s) := min(s) if count(s) > 0

else := ""

grant(key, text) := {"key": key, "text": text}

escalation(e, target) := grant(e, sprintf("%s on %s (privilege escalation)", [escalation_actions[e], target]))

# pattern_grants are the admin grants of an Allow of action pattern p (lower case) on targets t,
# each with the key a Deny must cover to take it back.
pattern_grants(p, t) := {grant("*", "every action on every resource")} if {
	t.every
	every_action(p)
} else := {grant(s, sprintf("%s on every resource", [p]))} if {
	t.every
	s := service_of(p)
} else := {grant("iam", sprintf("%s on %s (every IAM action)", [p, t.iam]))} if {
	t.iam != ""
	covers_iam(p)
} else := {escalation(e, t.kind) | some e in escalations_of(p)} if t.kind != ""

# not_action_grants are those of an Allow of every action but its NotAction.
not_action_grants(st, t) := set() if {
	some p in lowered(st, "NotAction")
	every_action(p)
} else := {grant("*", "every action but its NotAction on every resource")} if {
	t.every
} else := {grant("iam", sprintf("every action but its NotAction on %s (every IAM action)", [t.iam]))} if {
	t.iam != ""
	not excludes_iam(st)
} else := {escalation(e, t.kind) | some e, _ in escalation_actions; not e in excluded} if {
	t.kind != ""
	excluded := {e | some p in lowered(st, "NotAction"); some e in escalations_of(p)}
}

excludes_iam(st) if {
	some p in lowered(st, "NotAction")
	covers_iam(p)
}

# Most statements name their actions: their resources are read only when some action may be
# admin (a wildcard, or an escalation action).
allow_grants(st) := not_action_grants(st, targets(st)) if has(st, "NotAction")

else := {g |
	regex.match(may_be_admin, lower(json.marshal(object.get(st, "Action", null))))
	t := targets(st)
	some p in lowered(st, "Action")
	some g in pattern_grants(p, t)
}

# --- Deny ---------------------------------------------------------------------------------------

# deny_keys are the keys of the grants doc's Denies take back: "*" for every action, services,
# "iam", escalation actions. A Deny counts when it is unconditional and applies to every
# resource: a Resource pattern matching every ARN, or an empty NotResource (a Deny of all but
# some resources leaves those granted).
deny_keys(doc) := {k |
	some st in statements(doc)
	is_deny(st)
	unconditional(st)
	denies_every_resource(st)
	some k in deny_scope(st)
}

denies_every_resource(st) if {
	has(st, "NotResource")
	count(members(st, "NotResource")) == 0
}

denies_every_resource(st) if {
	not has(st, "NotResource")
	some r in members(st, "Resource")
	every_arn(r)
}

# A Deny of all actions but its NotAction takes back everything when what it leaves would not
# be admin on every resource; else, nothing.
deny_scope(st) := {k | some p in lowered(st, "Action"); some k in pattern_keys(p)} if {
	not has(st, "NotAction")
} else := {"*"} if {
	count({g | some p in lowered(st, "NotAction"); some g in pattern_grants(p, everywhere)}) == 0
}

pattern_keys(p) := {"*"} if every_action(p)

else := (escalations_of(p) | {s | s := service_of(p)}) | {"iam" | covers_iam(p)}

# --- Verdict ------------------------------------------------------------------------------------

# admin_grants are the grants that make doc admin, {key, text}, that no Deny takes back: every
# action, or every action of a service, on every resource; every IAM action on an IAM
# resource; a privilege escalation on every resource (or all of a kind). Empty means doc is not
# admin-scoped.
admin_grants(doc) := {g |
	denied := deny_keys(doc)
	not "*" in denied
	some st in statements(doc)
	is_allow(st)
	some g in allow_grants(st)
	not g.key in denied
}

# admin_scopes are the keys of admin_grants(doc): "*", a service, "iam", an escalation action.
admin_scopes(doc) := {g.key | some g in admin_grants(doc)}

# summary puts grants in words for a message: the first three, and how many more.
summary(grants) := concat(", ", texts) if {
	texts := sort({g.text | some g in grants})
	count(texts) <= 3
} else := sprintf("%s and %d more", [concat(", ", array.slice(texts, 0, 3)), count(texts) - 3]) if {
	texts := sort({g.text | some g in grants})
}

# --- Roles --------------------------------------------------------------------------------------

# admin_role says why a role named in a credential's access.roles is administrative, for a
# message; undefined for other roles. Names are compared in lower case.
admin_role(role) := why if {
	why := admin_roles[lower(role)]
} else := why if {
	# Azure built-in roles by ID: bare, or a roleDefinitions path at any scope.
	r := lower(role)
	segments := split(r, "/")
	id := segments[count(segments) - 1]
	why := azure_role_ids[id]
	azure_role_definition(r, id)
} else := why if {
	# AWS managed policies, by name or ARN.
	segments := split(lower(role), "/")
	why := aws_admin_policies[segments[count(segments) - 1]]
} else := "GCP administrative role" if {
	# GCP predefined *Admin roles, such as roles/storage.admin or roles/iam.securityAdmin.
	startswith(lower(role), "roles/")
	endswith(lower(role), "admin")
}

azure_role_definition(r, id) if r == id

azure_role_definition(r, id) if endswith(r, concat("", ["microsoft.authorization/roledefinitions/", id]))

admin_roles := {
	"roles/owner": "GCP basic role Owner",
	"roles/editor": "GCP basic role Editor",
	"roles/iam.serviceaccounttokencreator": "GCP: mints tokens as any service account",
	"roles/iam.serviceaccountuser": "GCP: acts as any service account",
	"roles/iam.serviceaccountkeyadmin": "GCP: creates service account keys",
	"roles/iam.workloadidentityuser": "GCP: impersonates service accounts",
	"owner": "Azure Owner",
	"contributor": "Azure Contributor",
	"user access administrator": "Azure User Access Administrator",
	"role based access control administrator": "Azure Role Based Access Control Administrator",
	"cluster-admin": "Kubernetes cluster-admin",
	"admin": "Kubernetes admin",
	"system:masters": "Kubernetes system:masters, which bypasses RBAC",
}

azure_role_ids := {
	"8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Azure Owner",
	"b24988ac-6180-42a0-ab88-20f7382dd24c": "Azure Contributor",
	"18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "Azure User Access Administrator",
	"f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Azure Role Based Access Control Administrator",
}

aws_admin_policies := {
	"administratoraccess": "AWS AdministratorAccess",
	"poweruseraccess": "AWS PowerUserAccess",
	"iamfullaccess": "AWS IAMFullAccess",
}
