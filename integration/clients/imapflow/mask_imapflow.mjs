// imapflow, a real IMAP client library that fetches parts with BINARY when
// the server offers it, through giftlock: it lists the mailbox (envelope,
// BODYSTRUCTURE, source), downloads every leaf part (BINARY.PEEK, decoded
// to UTF-8 by imapflow) and checks that none of it carries a labelled code
// (raw source, decoded parts after NFKC, envelope subject).
//
//   node mask_imapflow.mjs --proxy-port N --user U --proxy-password-file F \
//        --labels L1 [--labels L2 ...]
//
// Output: one JSON line {messages, parts, binary_fetches, checks, failures};
// never message content. Exit 0 when no failure, 1 otherwise, 2 on errors.

import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';

function parseArgs(argv) {
    const args = { labels: [] };
    for (let i = 2; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, '');
        if (key === 'labels') args.labels.push(argv[i + 1]);
        else args[key] = argv[i + 1];
    }
    return args;
}

const args = parseArgs(process.argv);
const codes = [...new Set(args.labels.flatMap(f => Object.values(JSON.parse(readFileSync(f, 'utf8'))).flatMap(e => e.codes || [])))];
const report = { messages: 0, parts: 0, binary_fetches: 0, checks: 0, failures: [] };

function expect(cond, what) {
    report.checks += 1;
    if (!cond) report.failures.push(what);
}

function leaks(text) {
    const norm = text.normalize('NFKC');
    return codes.map((c, i) => (norm.includes(c.normalize('NFKC')) ? i : -1)).filter(i => i >= 0);
}

function leafParts(node, out = []) {
    if (node.childNodes && node.childNodes.length) {
        for (const child of node.childNodes) leafParts(child, out);
    } else if (node.part) {
        out.push(node.part);
    } else {
        out.push('1');
    }
    return out;
}

// Counts the FETCH commands imapflow sends with BINARY, from its own log of
// what it writes; never keeps the log itself.
const logger = {
    debug(entry) {
        const text = entry && typeof entry.msg === 'string' ? entry.msg : '';
        if (entry && entry.src === 'c' && /FETCH .*BINARY\.PEEK\[/i.test(text)) report.binary_fetches += 1;
    },
    info() {},
    warn() {},
    error() {},
    trace() {}
};

async function main() {
    const client = new ImapFlow({
        host: '127.0.0.1',
        port: Number(args['proxy-port']),
        secure: false,
        doSTARTTLS: false,
        auth: { user: args.user, pass: readFileSync(args['proxy-password-file'], 'utf8').trim() },
        logger,
        logRaw: false,
        socketTimeout: 30000
    });
    await client.connect();
    expect(client.capabilities.has('BINARY'), 'giftlock does not offer BINARY: imapflow would not use it');
    const lock = await client.getMailboxLock('INBOX');
    try {
        const messages = [];
        for await (const msg of client.fetch('1:*', { uid: true, envelope: true, bodyStructure: true, source: true })) {
            messages.push({ uid: msg.uid, subject: msg.envelope?.subject || '', bodyStructure: msg.bodyStructure, size: msg.source?.length || 0 });
            const found = leaks(msg.source ? msg.source.toString('latin1') : '');
            expect(found.length === 0, `uid ${msg.uid} source: labelled code #${found}`);
        }
        for (const m of messages) {
            report.messages += 1;
            const found = leaks(m.subject);
            expect(found.length === 0, `uid ${m.uid} envelope subject: labelled code #${found}`);
            for (const part of leafParts(m.bodyStructure || {})) {
                const { content } = await client.download(String(m.uid), part, { uid: true, binary: true });
                expect(Boolean(content), `uid ${m.uid} part ${part}: no content`);
                if (!content) continue;
                const chunks = [];
                for await (const chunk of content) chunks.push(chunk);
                const data = Buffer.concat(chunks);
                report.parts += 1;
                const inPart = [...new Set([...leaks(data.toString('utf8')), ...leaks(data.toString('latin1'))])];
                expect(inPart.length === 0, `uid ${m.uid} part ${part} (imapflow download): labelled code #${inPart}`);
            }
        }
    } finally {
        lock.release();
    }
    await client.logout();
}

main().then(
    () => {
        expect(report.binary_fetches > 0, 'imapflow sent no BINARY.PEEK fetch');
        console.log(JSON.stringify({ ...report, ok: report.failures.length === 0 }));
        process.exit(report.failures.length === 0 ? 0 : 1);
    },
    err => {
        console.log(JSON.stringify({ ...report, ok: false, error: String(err && err.message) }));
        process.exit(2);
    }
);
