// Builds the JDK trust store (/etc/ssl/certs/java/cacerts) from a PEM bundle, in one JVM.
// Debian's ca-certificates-java does this in a maintainer script that a stand-in never runs;
// calling keytool once per certificate would start ~140 JVMs.
// Usage: java MakeCacerts.java BUNDLE.pem OUT (password "changeit", as in every JDK).

import java.io.BufferedInputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;

public class MakeCacerts {
    public static void main(String[] args) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        int count = 0;
        try (InputStream in = new BufferedInputStream(new FileInputStream(args[0]))) {
            for (Certificate cert : factory.generateCertificates(in)) {
                store.setCertificateEntry("crossport:" + count++, cert);
            }
        }
        try (OutputStream out = new FileOutputStream(args[1])) {
            store.store(out, "changeit".toCharArray());
        }
        System.out.println(count + " certificates in " + args[1]);
    }
}
