package safra.trino;

import io.airlift.slice.Slice;
import io.airlift.slice.Slices;
import io.trino.spi.TrinoException;
import io.trino.spi.function.Description;
import io.trino.spi.function.ScalarFunction;
import io.trino.spi.function.SqlType;
import io.trino.spi.type.StandardTypes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.HexFormat;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import static io.trino.spi.StandardErrorCode.CONFIGURATION_INVALID;

/**
 * Keyed pseudonyms, equal to Python's {@code safra.pseudonyms}: lowercase hex HMAC-SHA256 of the
 * value's UTF-8 bytes keyed by the key's UTF-8 bytes; a tax id (CPF/CNPJ) by its digits only.
 * Null in, null out (Trino's default for functions without {@code @SqlNullable}).
 */
public final class PseudonymFunctions {
    /** System property naming the key file (written 0600 by {@code safra stack up}). */
    public static final String KEY_FILE_PROPERTY = "safra.pseudonym-key-file";
    private static final int MIN_KEY_BYTES = 16;
    private static final HexFormat HEX = HexFormat.of();

    private PseudonymFunctions() {}

    @ScalarFunction(value = "safra_pseudonym", deterministic = true)
    @Description("Safra's pseudonym of a value: lowercase hex HMAC-SHA256 keyed by SAFRA_PSEUDONYM_KEY")
    @SqlType(StandardTypes.VARCHAR)
    public static Slice pseudonym(@SqlType(StandardTypes.VARCHAR) Slice value) {
        return hmac(value.getBytes());
    }

    @ScalarFunction(value = "safra_tax_id_pseudonym", deterministic = true)
    @Description("Safra's pseudonym of a CPF/CNPJ: safra_pseudonym of its digits only")
    @SqlType(StandardTypes.VARCHAR)
    public static Slice taxIdPseudonym(@SqlType(StandardTypes.VARCHAR) Slice value) {
        byte[] bytes = value.getBytes();
        byte[] digits = new byte[bytes.length];
        int n = 0;
        // UTF-8: bytes of multi-byte characters are all >= 0x80, so ASCII digits are exact.
        for (byte b : bytes) {
            if (b >= '0' && b <= '9') {
                digits[n++] = b;
            }
        }
        return hmac(java.util.Arrays.copyOf(digits, n));
    }

    private static Slice hmac(byte[] message) {
        Mac mac = Key.MAC.get();
        return Slices.utf8Slice(HEX.formatHex(mac.doFinal(message)));
    }

    /** The key, read once from its file when a function first runs; a clear error if unusable. */
    private static final class Key {
        private static final byte[] BYTES;
        private static final String PROBLEM;

        static {
            byte[] bytes = null;
            String problem = null;
            String file = System.getProperty(KEY_FILE_PROPERTY);
            if (file == null || file.isEmpty()) {
                problem = "the Trino server was started without -D" + KEY_FILE_PROPERTY;
            } else {
                try {
                    bytes = stripNewline(Files.readAllBytes(Path.of(file)));
                    if (bytes.length < MIN_KEY_BYTES) {
                        problem = "the key in " + file + " is shorter than " + MIN_KEY_BYTES + " bytes";
                        bytes = null;
                    }
                } catch (IOException | RuntimeException e) {
                    problem = "the key file " + file + " cannot be read (" + e + ")";
                }
            }
            BYTES = bytes;
            PROBLEM = problem;
        }

        static final ThreadLocal<Mac> MAC = ThreadLocal.withInitial(Key::newMac);

        private static Mac newMac() {
            if (BYTES == null) {
                throw new TrinoException(CONFIGURATION_INVALID, "Safra's pseudonym key is unavailable: "
                        + PROBLEM + ". Fix: set SAFRA_PSEUDONYM_KEY (16+ characters; `make env` "
                        + "generates it into .env) and restart Trino with `safra stack down trino` "
                        + "then `safra stack up`.");
            }
            try {
                Mac mac = Mac.getInstance("HmacSHA256");
                mac.init(new SecretKeySpec(BYTES, "HmacSHA256"));
                return mac;
            } catch (GeneralSecurityException e) {
                throw new TrinoException(CONFIGURATION_INVALID, "HmacSHA256 is unavailable: " + e, e);
            }
        }

        private static byte[] stripNewline(byte[] bytes) {
            int end = bytes.length;
            while (end > 0 && (bytes[end - 1] == '\n' || bytes[end - 1] == '\r')) {
                end--;
            }
            return java.util.Arrays.copyOf(bytes, end);
        }
    }
}
