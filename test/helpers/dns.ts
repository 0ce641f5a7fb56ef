// A real DNS server on loopback (UDP), answering TXT questions from a table the test fills, so
// domain verification runs its own resolver code against the wire protocol, not a stub.
import { createSocket } from "node:dgram";
import dnsPacket from "dns-packet";

export interface TestDns {
  /** `ip:port`, for SPINDLE_DNS_SERVERS. */
  address: string;
  /** The TXT values served at a name (replacing earlier ones); none removes the name. */
  setTxt(name: string, ...values: string[]): void;
  close(): Promise<void>;
}

export async function startTestDns(): Promise<TestDns> {
  const records = new Map<string, string[]>();
  const socket = createSocket("udp4");
  socket.on("message", (message, peer) => {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    const values = question ? records.get(question.name.toLowerCase()) : undefined;
    const answer = dnsPacket.encode({
      id: query.id,
      type: "response",
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (values ? 0 : 3), // rcode 3: NXDOMAIN
      questions: query.questions,
      answers: question?.type === "TXT" && values ? values.map((data) => ({ type: "TXT" as const, name: question.name, ttl: 1, data })) : [],
    });
    socket.send(answer, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    setTxt(name, ...values) {
      if (values.length) records.set(name.toLowerCase(), values);
      else records.delete(name.toLowerCase());
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
