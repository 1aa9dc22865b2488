// Validates audit lines (one JSON object per line, files given as
// arguments) against internal/audit/audit.schema.json with ajv in strict
// mode, an independent validator from the one the Go tests use. The schema
// itself must compile in strict mode, and three lines it must refuse are
// checked too, so a schema that accepts anything cannot pass.
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");

const schema = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "internal", "audit", "audit.schema.json"), "utf8"));
const ajv = new Ajv({ strict: true, allErrors: true });
addFormats(ajv);
const validate = ajv.compile(schema);

let lines = 0, bad = 0, sample = null;
// The tokengate_audit writer's own kinds must be among the real lines too.
const kinds = { checkpoint: 0, continues: 0 };
for (const file of process.argv.slice(2)) {
	for (const text of fs.readFileSync(file, "utf8").split("\n")) {
		if (text.trim() === "") continue;
		const line = JSON.parse(text);
		lines++;
		if (!sample && line.msg === "decision") sample = line;
		if (line.msg in kinds) kinds[line.msg]++;
		if (!validate(line)) {
			bad++;
			if (bad <= 10) console.error("invalid:", ajv.errorsText(validate.errors), "\n  ", text);
		}
	}
}
for (const [kind, n] of Object.entries(kinds)) {
	if (n === 0) { console.error(`no ${kind} line among the audit lines: the e2e tests must write them`); bad++; }
}
if (lines === 0 || !sample) {
	console.error("no audit lines (or no decision line) to validate");
	process.exit(1);
}
for (const [name, change] of [
	["an added secret field", (l) => { l.secret = "tg_x"; }],
	["client_ip not-an-ip", (l) => { l.client_ip = "not-an-ip"; }],
	["ts yesterday", (l) => { l.ts = "yesterday"; }],
]) {
	const l = JSON.parse(JSON.stringify(sample));
	change(l);
	if (validate(l)) { console.error("the schema accepts a line with " + name); bad++; }
}
console.log(`ajv (strict): ${lines} audit lines checked (${kinds.checkpoint} checkpoint, ${kinds.continues} continues), ${bad} problems`);
process.exit(bad === 0 ? 0 : 1);
